package adapters

import (
	"sync"

	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// DefaultStreamCacheSize bounds how many order streams the Store keeps
// decoded: more than the open orders the service admits by default
// (MAX_OPEN_ORDERS 2000), at a few hundred bytes per event.
const DefaultStreamCacheSize = 4096

// streamCache keeps the decoded events of orders in progress, so that
// handling a reply does not read and decode its order's whole stream again
// (that was a tenth of the order service's CPU under load).
//
// An entry is a stream's events up to a version. LoadOrder uses it only
// when the database's stream is at that version, read in the loading
// transaction; so an entry written by a transaction that then rolled back
// (its version never committed) only costs a reload, and an entry can never
// stand for other events at the same version: every append goes through
// SaveOrder, which replaces or drops the entry. Orders that ended are
// dropped (a late duplicate reloads them). When full, an arbitrary entry
// makes room.
type streamCache struct {
	mu      sync.Mutex
	max     int
	streams map[string]cachedStream
}

// cachedStream is a stream's events, oldest first; the slice is never
// changed once cached (a longer stream is a new slice).
type cachedStream struct {
	version int
	events  []domain.Event
}

func newStreamCache(max int) *streamCache {
	return &streamCache{max: max, streams: make(map[string]cachedStream)}
}

func (c *streamCache) get(id string) (cachedStream, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.streams[id]
	return s, ok
}

func (c *streamCache) put(id string, s cachedStream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.streams[id]; !ok && len(c.streams) >= c.max {
		for other := range c.streams {
			delete(c.streams, other)
			break
		}
	}
	c.streams[id] = s
}

func (c *streamCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.streams, id)
}

func (c *streamCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}
