// Package inprocess runs orderflow's four services (order, inventory,
// payment, shipping) in the calling process, on one shared queue, each with
// its own SQLite database under one directory and its own free loopback
// ports: the whole system without building or starting binaries, for tests
// and benchmarks.
//
//	sys, err := inprocess.Start(ctx, inprocess.Config{QueueURL: "memory://"})
//	defer sys.Stop()
//	res, err := http.Post(sys.OrderURL()+"/orders", "application/json", body)
//	err = sys.Faults(inprocess.Payment).Set(faults.PaymentDeclineRate, "1")
//	admin := sys.AdminURL(inprocess.Inventory) // GET admin+"/stock"
//
// The services are the same packages the binaries run (services/*/service),
// so their HTTP routes, fault flags and shutdown are the real ones. The
// queue is any URL the queue module opens: sqlite://PATH, postgres://… or
// memory:// (Watermill's GoChannel, which drops what is published while a
// topic has no subscriber: a service stopped with StopService misses its
// messages for good there).
package inprocess

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/queue"
	inventoryservice "github.com/orderflow/orderflow/services/inventory/service"
	orderservice "github.com/orderflow/orderflow/services/order/service"
	paymentservice "github.com/orderflow/orderflow/services/payment/service"
	shippingservice "github.com/orderflow/orderflow/services/shipping/service"
)

// The services' names (their service.name, consumer group and fault flags).
const (
	Order     = orderservice.Name
	Inventory = inventoryservice.Name
	Payment   = paymentservice.Name
	Shipping  = shippingservice.Name
)

// Services lists the services in start order.
var Services = []string{Inventory, Payment, Shipping, Order}

// Config configures Start. Zero values take the defaults.
type Config struct {
	// QueueURL is the shared queue: sqlite://PATH, postgres://… or
	// memory://. Default sqlite://DIR/queue.db. Ignored when Queue is set.
	QueueURL string
	// Queue, when set, is an open queue the system uses and does not
	// close.
	Queue *queue.Queue
	// Dir holds the services' databases (DIR/<service>/<service>.db) and
	// the default queue file. Default: a new temporary directory, removed
	// by Stop.
	Dir string
	// StepTimeout is how long the order saga waits for a service before
	// compensating. Default the order service's (30s).
	StepTimeout time.Duration
	// Concurrency is how many messages of a topic each service handles at
	// once. Default each service's (4).
	Concurrency int
	// MaxAttempts is how often a failing message is delivered before it
	// is dead-lettered. Default each service's (5).
	MaxAttempts int
	// CatalogFile is the JSON catalogue of the order and inventory
	// services; "" is the built-in one (pkg/catalog).
	CatalogFile string
	// Logger receives every service's logs, with a "service" attribute.
	// Default: discarded.
	Logger *slog.Logger
	// ReadyTimeout bounds how long a service may take to be ready
	// (handlers subscribed, admin API answering). Default 30s.
	ReadyTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 30 * time.Second
	}
}

// System is the four services running in this process.
type System struct {
	cfg      Config
	dir      string
	ownDir   bool
	queue    *queue.Queue
	ownQueue bool

	mu       sync.Mutex
	services map[string]*member
}

// member is one service of the system: its addresses stay the same across
// a restart.
type member struct {
	faults  *faults.Registry
	apiAddr string // the order API (order only)
	admin   string // the admin API (for inventory, payment and shipping also their state routes)
	stop    context.CancelFunc
	done    chan error
}

// Start opens the queue and starts the four services, and returns once
// each is ready (its handlers subscribed, its admin API answering), or
// fails and stops what it started. ctx bounds the start only; the system
// runs until Stop.
func Start(ctx context.Context, cfg Config) (_ *System, err error) {
	cfg.setDefaults()
	s := &System{cfg: cfg, dir: cfg.Dir, queue: cfg.Queue, services: map[string]*member{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
		}
	}()
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "orderflow-inprocess-"); err != nil {
			return nil, err
		}
		s.ownDir = true
	}
	if s.queue == nil {
		url := cfg.QueueURL
		if url == "" {
			url = "sqlite://" + filepath.Join(s.dir, "queue.db")
		}
		if s.queue, err = queue.Open(ctx, queue.Config{URL: url}); err != nil {
			return nil, fmt.Errorf("open queue: %w", err)
		}
		s.ownQueue = true
	}
	for _, name := range Services {
		s.services[name] = &member{}
		if err := s.StartService(ctx, name); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Dir is the directory of the services' databases.
func (s *System) Dir() string { return s.dir }

// OrderURL is the base URL of the order API, e.g. http://127.0.0.1:40123.
func (s *System) OrderURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.member(Order).apiAddr
}

// AdminURL is the base URL of a service's admin API (health, fault flags,
// dead letters, queue stats; for inventory, payment and shipping also
// their state routes such as GET /stock).
func (s *System) AdminURL(service string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.member(service).admin
}

// Faults returns a service's fault flags, the same registry its admin API
// changes. A restarted service starts with a new one, at the defaults.
func (s *System) Faults(service string) *faults.Registry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.member(service).faults
}

func (s *System) member(service string) *member {
	m, ok := s.services[service]
	if !ok {
		panic(fmt.Sprintf("inprocess: unknown service %q", service))
	}
	return m
}

// StartService starts a stopped service again, on the same addresses and
// database, and waits until it is ready.
func (s *System) StartService(ctx context.Context, service string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.member(service)
	if m.stop != nil {
		return fmt.Errorf("start %s: already running", service)
	}
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags(service), Logger: s.cfg.Logger.With("service", service)})
	if err != nil {
		return err
	}
	run, err := s.open(ctx, service, m, reg)
	if err != nil {
		return fmt.Errorf("start %s: %w", service, err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	m.faults, m.stop, m.done = reg, stop, make(chan error, 1)
	go func() { m.done <- run(runCtx) }()
	if err := s.waitReady(ctx, service, m); err != nil {
		stop()
		m.stop = nil
		return errors.Join(fmt.Errorf("start %s: %w", service, err), <-m.done)
	}
	return nil
}

// open builds one service and records its addresses in m.
func (s *System) open(ctx context.Context, service string, m *member, reg *faults.Registry) (func(context.Context) error, error) {
	host := servicehost.Config{
		Queue: s.queue, DataDir: filepath.Join(s.dir, service), HTTPAddr: addrOr(m.admin),
		Concurrency: s.cfg.Concurrency, MaxAttempts: s.cfg.MaxAttempts,
		Logger: s.cfg.Logger.With("service", service), Faults: reg,
	}
	var h *servicehost.Host
	var err error
	switch service {
	case Order:
		o, err := orderservice.New(ctx, orderservice.Config{
			Queue: s.queue, DataDir: host.DataDir, HTTPAddr: addrOr(m.apiAddr), AdminAddr: addrOr(m.admin),
			CatalogFile: s.cfg.CatalogFile, StepTimeout: s.cfg.StepTimeout,
			Concurrency: s.cfg.Concurrency, MaxAttempts: s.cfg.MaxAttempts, Logger: host.Logger, Faults: reg,
		})
		if err != nil {
			return nil, err
		}
		m.apiAddr, m.admin = o.HTTPAddr(), o.AdminAddr()
		return o.Run, nil
	case Inventory:
		h, err = inventoryservice.New(ctx, inventoryservice.Config{Config: host, CatalogFile: s.cfg.CatalogFile})
	case Payment:
		h, err = paymentservice.New(ctx, host)
	case Shipping:
		h, err = shippingservice.New(ctx, host)
	}
	if err != nil {
		return nil, err
	}
	m.admin = h.HTTPAddr()
	return h.Run, nil
}

// addrOr is addr, or any free loopback port for a service started first.
func addrOr(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// waitReady polls the service's GET /readyz until it answers 200.
func (s *System) waitReady(ctx context.Context, service string, m *member) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.admin+"/readyz", nil)
		if err != nil {
			return err
		}
		if res, err := client.Do(req); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-m.done:
			m.done <- err // for the caller
			return fmt.Errorf("stopped before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// StopService stops one service gracefully (its handlers finish, its
// outbox is flushed) and returns what its Run returned. The queue keeps
// what is published meanwhile for it, except a memory:// queue.
func (s *System) StopService(service string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopMember(service, s.member(service))
}

func (s *System) stopMember(service string, m *member) error {
	if m.stop == nil {
		return nil
	}
	m.stop()
	err := <-m.done
	m.stop = nil
	if err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	return nil
}

// Stop stops every running service (concurrently), then closes the queue
// and removes the directory if the system made them. It returns the
// services' errors.
func (s *System) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := make([]error, len(Services))
	var wg sync.WaitGroup
	for i, name := range Services {
		if m, ok := s.services[name]; ok {
			wg.Go(func() { errs[i] = s.stopMember(name, m) })
		}
	}
	wg.Wait()
	if s.ownQueue && s.queue != nil {
		errs = append(errs, s.queue.Close())
		s.queue = nil
	}
	if s.ownDir {
		errs = append(errs, os.RemoveAll(s.dir))
		s.ownDir = false
	}
	return errors.Join(errs...)
}
