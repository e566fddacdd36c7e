package postgres_test

import (
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// BenchmarkPublish measures one message per Publish call (one INSERT and
// commit each).
func BenchmarkPublish(b *testing.B) {
	be := openBackend(b, testDSN(b), fastConfig())
	topic := newTopic(b)
	pub := be.Publisher()
	payload := []byte(`{"order_id":"o-1","amount":1299}`)
	b.ResetTimer()
	for i := range b.N {
		if err := pub.Publish(topic, message.NewMessage(fmt.Sprintf("b-%d", i), payload)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkConsume measures receiving and acking messages already stored,
// one subscription of one group (attempt bookkeeping included).
func BenchmarkConsume(b *testing.B) {
	be := openBackend(b, testDSN(b), fastConfig())
	topic := newTopic(b)
	var batch []*message.Message
	for i := range b.N {
		batch = append(batch, message.NewMessage(fmt.Sprintf("c-%d", i), []byte("x")))
		if len(batch) == 500 || i == b.N-1 {
			publish(b, be, topic, batch...)
			batch = batch[:0]
		}
	}
	ch := subscribe(b, newSubscriber(b, be, "bench"), topic)
	b.ResetTimer()
	for range b.N {
		receive(b, ch).Ack()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
