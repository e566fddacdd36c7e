package logtest_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/orderflow/orderflow/pkg/logtest"
)

// Lines written from many goroutines are all read back whole.
func TestBufferTakesConcurrentWriters(t *testing.T) {
	var b logtest.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				fmt.Fprintf(&b, "{\"writer\":%d,\"n\":%d}\n", i, j)
				_ = b.String() // read while the others write
			}
		})
	}
	wg.Wait()
	if got := len(b.Records(t)); got != 400 {
		t.Errorf("records: got %d, want 400", got)
	}
}
