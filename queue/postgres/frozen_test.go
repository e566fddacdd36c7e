package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres"
	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

// freezingProxy forwards TCP connections to the PostgreSQL server until it
// is frozen: from then on it forwards nothing either way and holds what it
// reads, as a consumer stopped by SIGSTOP or cut off by the network looks
// to the server. It listens on a port of 19700–19799.
type freezingProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	frozen chan struct{} // closed when unfrozen; nil while not frozen
	down   bool          // connections are closed as soon as accepted (see cut)
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	var ln net.Listener
	var err error
	for port := 19700; port < 19800; port++ {
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no free port in 19700-19799: %v", err)
	}
	p := &freezingProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *freezingProxy) pipe(from, to net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			if frozen != nil {
				<-frozen
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = to.Close()
			}
			if tc, ok := to.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

func (p *freezingProxy) unfreeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
}

// cut closes every connection it forwards and, until restore, every one
// it accepts at once: the server is down, as clients see it.
func (p *freezingProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// restore ends cut: connections are forwarded again.
func (p *freezingProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func (p *freezingProxy) close() {
	p.unfreeze()
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// throughProxy returns dsn with its host replaced by the proxy's.
func throughProxy(t *testing.T, dsn string) (string, *freezingProxy) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	p := startFreezingProxy(t, target)
	u.Host = p.ln.Addr().String()
	return u.String(), p
}

// A consumer frozen while it holds its group's batch (its process stopped,
// its host cut off) no longer blocks the group for good: the server ends
// its session after Config.HoldTimeout, and the standby consumer of the
// group takes over and receives every message, the frozen batch's too.
func TestFrozenConsumerIsTakenOver(t *testing.T) {
	dsn := testDSN(t)
	cfg := fastConfig()
	cfg.AckDeadline = time.Second
	cfg.CloseTimeout = time.Second
	bound := cfg.HoldTimeout() + time.Second // + BusyPollInterval and a poll

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() == "" || strings.HasPrefix(u.Hostname(), "/") {
		// CI reaches the server over TCP (.ci/run): there this test runs.
		if os.Getenv("CI") != "" {
			t.Fatalf("%s reaches the test server through a Unix socket; the proxy needs TCP", pgtest.EnvURL)
		}
		t.Skip("the test server is reached through a Unix socket; the proxy needs TCP")
	}
	proxied, proxy := throughProxy(t, dsn)
	frozenB, err := postgres.Open(context.Background(), proxied, cfg)
	if err != nil {
		t.Fatal(err)
	}
	standbyB := openBackend(t, dsn, cfg)

	topic := newTopic(t)
	want := []string{"m1", "m2", "m3"}
	for _, id := range want {
		publish(t, standbyB, topic, message.NewMessage(id, []byte("{}")))
	}

	frozenSub, err := frozenB.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	frozenCh, err := frozenSub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	first := receive(t, frozenCh)
	proxy.freeze() // first stays unacked: its batch's transaction stays open
	frozenAt := time.Now()

	standby := subscribe(t, newSubscriber(t, standbyB, "g"), topic)
	var got []string
	// The standby takes over once the server has ended the frozen
	// session (HoldTimeout) and its next poll finds the lock free; the
	// wait allows far more, for a loaded machine: this is a test of the
	// takeover, not of its speed.
	deadline := time.After(bound + 30*time.Second)
	for len(got) < len(want) {
		select {
		case msg := <-standby:
			got = append(got, msg.UUID)
			msg.Ack()
		case <-deadline:
			t.Fatalf("the standby got %v in %s after the other consumer froze holding %s; want %v within HoldTimeout %s",
				got, time.Since(frozenAt).Round(time.Millisecond), first.UUID, want, cfg.HoldTimeout())
		}
	}
	t.Logf("the standby took over %s after the freeze (HoldTimeout %s)", time.Since(frozenAt).Round(time.Millisecond), cfg.HoldTimeout())
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("standby got %v, want %v", got, want)
	}

	proxy.unfreeze()
	_ = frozenSub.Close()
	_ = frozenB.Close()
}

// A live consumer whose handlers are slow, each within AckDeadline, keeps
// its batch however long the batch takes in all: HoldTimeout bounds the
// time between two statements, not the batch, and the subscription sends
// one before a message when its transaction has been idle for a while.
func TestSlowBatchIsNotCutByHoldTimeout(t *testing.T) {
	cfg := fastConfig()
	cfg.AckDeadline = time.Second
	b := openBackend(t, testDSN(t), cfg)
	topic := newTopic(t)
	const n = 6
	handling := 700 * time.Millisecond // n × handling > HoldTimeout
	if n*handling <= cfg.HoldTimeout() {
		t.Fatalf("the batch must outlast HoldTimeout %s", cfg.HoldTimeout())
	}
	for i := range n {
		publish(t, b, topic, message.NewMessage(fmt.Sprintf("m%d", i), []byte("{}")))
	}
	ch := subscribe(t, newSubscriber(t, b, "g"), topic)
	for i := range n {
		msg := receive(t, ch)
		if msg.UUID != fmt.Sprintf("m%d", i) || msg.Metadata.Get(backend.MetadataAttempt) != "1" {
			t.Fatalf("got %s attempt %s, want m%d attempt 1: the batch was cut", msg.UUID, msg.Metadata.Get(backend.MetadataAttempt), i)
		}
		time.Sleep(handling)
		msg.Ack()
	}
	expectNothing(t, ch, cfg.HoldTimeout())
}
