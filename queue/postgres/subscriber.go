package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/retry"
)

// Subscriber returns a subscriber of one consumer group. Every Subscribe
// call runs its own watermill-sql subscription and hands out one message at
// a time: the next one comes after the previous was acked or nacked
// (Concurrency above 1 is accepted but cannot be honoured, see the package
// comment). Delivered messages carry backend.MetadataAttempt and, after a
// failure, backend.MetadataFirstFailedAt and backend.MetadataLastError.
// On nack, the subscriber records the text the handler left in
// Metadata[backend.MetadataLastError] (which arrives holding the previous
// error, so a handler that sets none repeats it; "message nacked" when
// there is none at all) and redelivers after the delay in
// Metadata[delay.DelayedForKey], or after Config.ResendInterval; the delay
// is stored with the delivery, so whichever consumer of the group takes
// the message next, or the next process after a restart, waits out what
// is left of it (Backend.failDelivery). Messages
// whose backend.MetadataReplayForGroup names another group are acked
// without being handed out. A stored message that cannot be read (a row
// another writer put in the topic's table, whose metadata is not a JSON
// object of strings or whose uuid is empty) is not handed out either: it
// is dead-lettered for the group, reason retry.ReasonUnreadable, and
// acked, and the messages behind it are delivered (see readingSchema).
//
// Stopping is in two steps, so that a handler can finish: ending a
// Subscribe call's context stops its hand-out, and Close gives up on the
// handler still running (see subscriber.Subscribe and subscriber.Close).
func (b *Backend) Subscriber(cfg backend.SubscriberConfig) (message.Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres subscriber: %w", err)
	}
	if len(cfg.ConsumerGroup) > maxGroupLen {
		return nil, fmt.Errorf("postgres subscriber: consumer group longer than %d characters", maxGroupLen)
	}
	closingCtx, closed := context.WithCancel(context.Background())
	givenUp, giveUp := context.WithCancel(context.Background())
	s := &subscriber{
		givenUp:       givenUp,
		giveUp:        giveUp,
		b:             b,
		group:         cfg.ConsumerGroup,
		onDeadLetter:  cfg.OnDeadLetter,
		unreadableKey: newUnreadableKey(),
		logger:        b.cfg.Logger.With(watermill.LogFields{"consumer_group": cfg.ConsumerGroup}),
		closing:       closingCtx.Done(),
		endClosing:    closed,
		closingCtx:    closingCtx,
	}
	if err := b.track(nil, s); err != nil {
		giveUp()
		return nil, fmt.Errorf("postgres subscriber: %w", err)
	}
	return s, nil
}

// bookkeeping is the context of one bookkeeping write (detached), which
// also ends when Close gives up on the subscriptions.
func (s *subscriber) bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	bctx, cancel := detached(ctx)
	if s.givenUp == nil { // a subscriber built without Backend.Subscriber (tests)
		return bctx, cancel
	}
	stop := context.AfterFunc(s.givenUp, cancel)
	return bctx, func() { stop(); cancel() }
}

type subscriber struct {
	b      *Backend
	group  string
	logger watermill.LoggerAdapter
	// onDeadLetter is backend.SubscriberConfig.OnDeadLetter (may be nil).
	onDeadLetter func(topic string)
	// unreadableKey marks the messages of rows that could not be read
	// (see readingSchema).
	unreadableKey string

	closing <-chan struct{} // closed by Close
	// closingCtx ends with closing (for waits that take a context).
	closingCtx context.Context
	endClosing context.CancelFunc // closes closing
	// givenUp ends when Close stops waiting for the subscriptions: the
	// bookkeeping writes still running then are cancelled too.
	givenUp context.Context
	giveUp  context.CancelFunc

	mu     sync.Mutex
	closed bool
	subs   []*subscription
	relays sync.WaitGroup // one per subscription; each stops its inner subscriber
}

// subscription is one Subscribe call's watermill-sql subscriber. Its
// relay's goroutine closes it, after the relay's last message is settled:
// watermill-sql chooses at random between an ack and its closing, so a
// close must not overtake an ack.
type subscription struct {
	inner  *wsql.Subscriber
	cancel context.CancelFunc // aborts the inner subscriber's queries
	err    error              // of inner.Close, set before relays.Done
}

// SubscribeInitialize creates the topic's tables and registers the topic.
func (s *subscriber) SubscribeInitialize(topic string) error {
	if err := s.b.ensureTopic(context.Background(), topic); err != nil {
		return fmt.Errorf("subscribe initialize: %w", err)
	}
	return nil
}

// Subscribe starts consuming topic for the subscriber's group.
//
// When ctx ends, the subscription hands out nothing more and closes the
// channel at once. A message already handed out keeps its context, and its
// ack or nack is recorded when it comes, until Close (its context still
// ends when Config.AckDeadline passes, as it always does). Then the
// subscription stops its watermill-sql subscriber, which stores the offset
// of what was acked: an acked message is not delivered again. Ending ctx,
// waiting for the handler as long as one may, then calling Close is a
// graceful stop.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("subscribe to %q: %w", topic, ErrClosed)
	}
	if err := s.b.ensureTopic(ctx, topic); err != nil {
		return nil, fmt.Errorf("subscribe to %q: %w", topic, err)
	}

	g := newGate()
	busy := new(atomic.Bool)
	acks := new(batchAcks)
	inner, err := wsql.NewSubscriber(
		gatedDB{DB: s.b.subDB, gate: g, stop: s.closing, lockKey: groupLockKey(topic, s.group), busy: busy, acks: acks},
		wsql.SubscriberConfig{
			ConsumerGroup:  s.group,
			AckDeadline:    &s.b.cfg.AckDeadline,
			PollInterval:   s.b.cfg.PollInterval,
			ResendInterval: s.b.cfg.ResendInterval,
			RetryInterval:  s.b.cfg.RetryInterval,
			BackoffManager: &pollBackoff{
				min:      s.b.cfg.PollInterval,
				max:      s.b.cfg.MaxPollInterval,
				busyWait: s.b.cfg.BusyPollInterval,
				retry:    s.b.cfg.RetryInterval,
				maxRetry: s.b.cfg.MaxRetryInterval,
				outage:   newPollOutageLog(s.b.cfg.outageReportEvery()),
				busy:     busy,
			},
			SchemaAdapter:  readingSchema{DefaultPostgreSQLSchema: s.b.schema, topic: topic, unreadableKey: s.unreadableKey},
			OffsetsAdapter: subscriptionOffsets{offsetsAdapter: s.b.offsets, acks: acks},
		},
		s.logger,
	)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %q: %w", topic, err)
	}
	// The inner subscription outlives ctx: cancelling it would roll back
	// its transaction, and with it the acks of its batch (the handler's
	// among them). The relay stops it once its last message is settled.
	innerCtx, cancelInner := context.WithCancel(context.WithoutCancel(ctx))
	in, err := inner.Subscribe(innerCtx, topic)
	if err != nil {
		cancelInner()
		return nil, fmt.Errorf("subscribe to %q: %w", topic, err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancelInner()
		_ = inner.Close()
		return nil, fmt.Errorf("subscribe to %q: %w", topic, ErrClosed)
	}
	sub := &subscription{inner: inner, cancel: cancelInner}
	s.subs = append(s.subs, sub)
	s.relays.Add(1)
	s.mu.Unlock()

	out := &outlet{ch: make(chan *message.Message)}
	go func() {
		defer s.relays.Done()
		defer sub.cancel()
		s.relay(ctx, topic, g, acks, in, out)
		sub.err = sub.inner.Close()
	}()
	return out.ch, nil
}

// outlet is a subscription's output channel. The relay's goroutine alone
// sends on it and closes it, as soon as it will hand out nothing more:
// possibly before the outcome of the last message it handed out is known
// (see deliver).
type outlet struct {
	ch     chan *message.Message
	closed bool
}

func (o *outlet) close() {
	if !o.closed {
		o.closed = true
		close(o.ch)
	}
}

func (s *subscriber) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops every subscription and waits for its goroutines. A message
// handed out and not yet acked or nacked is given up: its context is
// cancelled and it is delivered again later, with this attempt counted (its
// handler did start; an outcome that still comes is not recorded). An
// outcome given before Close is recorded. Then each subscription stops its
// watermill-sql subscriber, which stores the offset of what was acked; after
// Config.CloseTimeout their queries are cancelled (the acked part of a batch
// is then delivered again).
func (s *subscriber) Close() error { return s.shutdown(context.Background()) }

// shutdown is Close, giving up on the subscriptions (as at
// Config.CloseTimeout) when ctx ends, if that comes first; so are the
// bookkeeping writes still running then.
func (s *subscriber) shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.endClosing()
	subs := s.subs
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.relays.Wait()
		close(done)
	}()
	timer := time.NewTimer(s.b.cfg.CloseTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	case <-ctx.Done():
	}
	select {
	case <-done:
	default:
		retry.Warn(s.logger, "Subscriptions did not stop in time, cancelling their queries", nil, nil)
		for _, sub := range subs {
			sub.cancel()
		}
		s.giveUp()
		<-done
	}
	s.giveUp()
	errs := make([]error, len(subs))
	for i, sub := range subs {
		errs[i] = sub.err
	}
	s.b.untrack(nil, s)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close subscriber of group %q: %w", s.group, err)
	}
	return nil
}

// stopping reports whether the subscription is to hand out nothing more:
// ctx (Subscribe's) ended or the subscriber closed. The relay asks before
// each claim and hand-out, as select chooses at random among ready cases.
func (s *subscriber) stopping(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	case <-s.closing:
		return true
	default:
		return false
	}
}

// relay reads watermill-sql's deliveries and hands them out with delivery
// metadata until ctx ends, the subscriber closes or the inner channel
// closes; it returns once the last message it handed out is settled (see
// deliver).
func (s *subscriber) relay(ctx context.Context, topic string, g *gate, acks *batchAcks, in <-chan *message.Message, out *outlet) {
	var acked *delivery // the last delivery acked in time, whose row the next claim marks acked
	// With no next claim, the held ack is written as the relay ends:
	// should the batch's commit not come (Close gives up on it), the
	// message's redelivery is settled, not run again. The channel is
	// closed first: the subscription hands out nothing more, and its
	// consumer (a router waiting for its subscriptions to end before it
	// waits for its handlers) need not wait for that write, which waits
	// for the server (up to bookkeepingTimeout, or until Close gives up).
	defer s.markHeldAck(ctx, &acked, s.logger.With(watermill.LogFields{"topic": topic}))
	defer out.close()
	for !s.stopping(ctx) {
		select {
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		case msg, ok := <-in:
			if !ok {
				return
			}
			if !s.deliver(ctx, topic, g, acks, msg, out, &acked) {
				return
			}
		}
	}
}

// deliver handles one message from watermill-sql and reports whether the
// relay should go on. It returns only once the message is acked or nacked
// (or the subscriber closes), which keeps one message in flight. When ctx
// ends while the handler runs, it closes out and goes on waiting for the
// outcome: a graceful stop (see Subscribe).
//
// Every ack within the ack deadline goes on the batch's list (acks), whose
// rows the batch's offset update deletes. An ack does not mark the
// message's row acked at once (see delivery): *acked keeps it, and the next
// claim marks it in the same statement. Until then the row still counts
// the message as in flight: should the process die before, the message
// comes back as abandoned, to run alone once (the inbox drops its
// effects). The ack of a message that ran alone, and a late one, are
// marked at once.
//
// A message whose row could not be read is claimed like any other, then
// dead-lettered and acked instead of handed out (deadLetterUnreadable).
func (s *subscriber) deliver(ctx context.Context, topic string, g *gate, acks *batchAcks, in *message.Message, out *outlet, acked **delivery) bool {
	logger := s.logger.With(watermill.LogFields{"topic": topic, "message_uuid": in.UUID})
	if in.Context().Err() != nil {
		// watermill-sql gave the message up before it came here (its ack
		// deadline passed meanwhile) and will hand it out again: an ack
		// now would be ignored, a claim would count an attempt nobody
		// makes.
		return true
	}
	tx, _ := wsql.TxFromContext(in.Context())
	batch, session, current := acks.of(tx)
	if !current {
		// Its batch has ended meanwhile (see above).
		return true
	}
	if group := in.Metadata.Get(backend.MetadataReplayForGroup); group != "" && group != s.group {
		s.markHeldAck(ctx, acked, logger)
		acks.add(tx, in.UUID)
		ackInner(in)
		return true
	}
	if s.stopping(ctx) {
		// Neither claimed nor acked: the inner subscriber gives it up
		// when it is closed.
		return false
	}

	if acks.lost(tx) || !s.keepTxAlive(tx, g, logger) {
		// The batch's transaction is gone with its session (cut from
		// outside): its offset cannot be stored, and another consumer
		// of the group may have its messages already. Hand out none of
		// the rest; the ack only lets watermill-sql end the batch, whose
		// offset update then fails, and read it again. The held ack is
		// written, to settle its message's redelivery.
		acks.lose(tx)
		s.markHeldAck(ctx, acked, logger)
		ackInner(in)
		return true
	}
	bctx, cancel := s.bookkeeping(ctx)
	d, err := s.b.claimDelivery(bctx, topic, s.group, in.UUID, in.Metadata.Get(backend.MetadataReplayID), batch, session, *acked)
	cancel()
	if errors.Is(err, errBatchLost) {
		// As above, found out by the claim: the session ended (or its
		// transaction did) since the last statement. The claim marked
		// the held ack.
		retry.Warn(logger, "The batch's transaction no longer holds the group's lock; its other messages are left for the next batch", nil, nil)
		*acked = nil
		acks.lose(tx)
		ackInner(in)
		return true
	}
	if err != nil {
		// watermill-sql hands the message out again after ResendInterval;
		// *acked stays for the next claim.
		logger.Error("Cannot record delivery, nacking", err, nil)
		in.Nack()
		return true
	}
	*acked = nil // the claim marked its row
	if d.acked {
		// Acked in a batch that did not commit (or late): settled.
		acks.add(tx, in.UUID)
		ackInner(in)
		return true
	}
	if u, ok := s.unreadable(in); ok {
		return s.deadLetterUnreadable(ctx, topic, in, u, d, acked, acks, logger)
	}

	// The handler's context ends with watermill-sql's, at the ack
	// deadline, when watermill-sql gives the message up and another
	// consumer of the group may take it over; and at the latest when
	// deliver returns: after the outcome, or when the subscriber gives the
	// message up (cancelled: a withdrawal). A failure at the deadline
	// counts as an attempt (the retry middleware): the deadline's budget
	// is spent by this message's own attempts in this transaction and the
	// short delays between them; a longer delay outlasts it (recordNack),
	// and the next attempt comes in a new transaction with a new budget.
	msgCtx, cancelMsg := context.WithCancel(in.Context())
	defer cancelMsg()
	msg := outbound(msgCtx, in, d)
	inDone := in.Context().Done()
	if s.stopping(ctx) {
		s.unclaim(ctx, d, logger)
		return false
	}
	if d.retryIn > 0 {
		// The delay the last nack asked for is not over: the consumer
		// that nacked gave the message up while it waited (its ack
		// deadline passed, or it stopped). The wait comes out of this
		// delivery's deadline, which the handler then gets what is left
		// of: wait here only when at least half of it is left for the
		// handler. Otherwise take the claim back (no attempt counted for
		// the wait) and let the deadline end the batch; the next batch's
		// claim, with a deadline of its own, finds less of the delay left.
		wait, handOut := d.retryIn, true
		if deadline, ok := in.Context().Deadline(); ok && d.retryIn > time.Until(deadline)/2 {
			s.unclaim(ctx, d, logger)
			wait, handOut = time.Until(deadline)+time.Second, false // inDone comes first
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-inDone:
			timer.Stop()
			if handOut {
				s.unclaim(ctx, d, logger)
			}
			return true
		case <-ctx.Done():
			timer.Stop()
			if handOut {
				s.unclaim(ctx, d, logger)
			}
			return false
		case <-s.closing:
			timer.Stop()
			if handOut {
				s.unclaim(ctx, d, logger)
			}
			return false
		}
		if !handOut {
			return true // only if the deadline's context never ended
		}
	}
	releaseSolo, err := s.admit(ctx, in, &d)
	if err != nil {
		if errors.Is(err, errNotAdmitted) {
			logger.Error("Cannot record a run alone, nacking", err, nil)
			s.unclaim(ctx, d, logger) // still abandoned, as the claim found it
			in.Nack()
			return true
		}
		s.unclaim(ctx, d, logger)
		// Stopping, or nobody took it before the ack deadline (see below).
		return !s.stopping(ctx)
	}
	defer releaseSolo()
	select {
	case out.ch <- msg:
	case <-ctx.Done():
		out.close() // before a write that may wait for the server
		s.unclaim(ctx, d, logger)
		return false
	case <-s.closing:
		out.close()
		s.unclaim(ctx, d, logger)
		return false
	case <-inDone:
		// Nobody took it before the ack deadline; watermill-sql
		// will deliver it again.
		s.unclaim(ctx, d, logger)
		return true
	}

	// The handler has it. If the ack deadline passes, watermill-sql gives
	// the message up and would read the group's next batch; the gate keeps
	// it from opening a transaction until this handler is done.
	g.hold()
	defer g.release()
	ctxDone := ctx.Done()
	for {
		select {
		case <-msg.Acked():
			s.recordAck(ctx, in, d, inDone != nil, acked, acks, logger)
			return true

		case <-msg.Nacked():
			return s.recordNack(ctx, in, msg, d, logger, releaseSolo)

		case <-inDone:
			inDone = nil // deadline passed; keep waiting for the handler
			logger.Error("A handler is running past the ack deadline; its subscription hands out nothing more until it returns", nil,
				watermill.LogFields{"ack_deadline": s.b.cfg.AckDeadline.String()})

		case <-ctxDone:
			// Hand out nothing more, but let the handler finish.
			out.close()
			ctxDone = nil

		case <-s.closing:
			// select chooses at random among ready cases: an outcome
			// that came with the close still counts.
			select {
			case <-msg.Acked():
				s.recordAck(ctx, in, d, inDone != nil, acked, acks, logger)
			case <-msg.Nacked():
				s.recordNack(ctx, in, msg, d, logger, releaseSolo)
			default:
				// Given up: the handler's context is cancelled; should
				// it still finish, unrecorded, the message comes back
				// later with this attempt counted, not as abandoned
				// (this consumer let go of it).
				bctx, cancel := s.bookkeeping(ctx)
				if err := s.b.releaseDelivery(bctx, d); err != nil {
					logger.Error("Release bookkeeping failed", err, nil)
				}
				cancel()
			}
			return false
		}
	}
}

// errNotAdmitted says that admit could not record a run alone.
var errNotAdmitted = errors.New("run alone not recorded")

// admit waits until d may be handed out and returns what lets the other
// handlers on once d's outcome is recorded: a share of the backend's gate,
// or, when d's previous delivery was abandoned, the whole gate, so that d
// runs alone (see backend.Backend), with the run recorded first. It fails
// with the context's error when ctx ends, the subscriber closes or in's
// ack deadline passes first, and with errNotAdmitted when the run cannot
// be recorded: the delivery is then unclaimed, still abandoned, and
// nacked for another try.
//
// A run recorded and then not made (nobody takes the message before its
// deadline, or the subscriber stops) is taken back when the delivery is
// unclaimed (d.soloRecorded). A handler of the process that does not
// finish within the gate's alone wait (a hung one) does not hold the
// process up: d then runs beside the others, its run not recorded.
func (s *subscriber) admit(ctx context.Context, in *message.Message, d *delivery) (release func(), err error) {
	wait, cancel := context.WithCancel(in.Context())
	defer cancel()
	stopOnEnd := context.AfterFunc(ctx, cancel)
	defer stopOnEnd()
	stopOnClose := context.AfterFunc(s.closingCtx, cancel)
	defer stopOnClose()
	if !d.abandoned {
		return s.b.solo.Share(wait)
	}
	release, alone, err := s.b.solo.AloneOrShared(wait)
	if err != nil {
		return nil, err
	}
	if !alone {
		retry.Warn(s.logger, "A message whose last delivery was abandoned runs beside the others, uncounted: "+
			"a handler of this process has been running for "+s.b.solo.AloneWait().String()+" or more", nil,
			watermill.LogFields{"message_uuid": in.UUID})
		return release, nil
	}
	bctx, cancelRecord := s.bookkeeping(ctx)
	defer cancelRecord()
	if err := s.b.recordSoloRun(bctx, *d); err != nil {
		release()
		return nil, fmt.Errorf("%w: %w", errNotAdmitted, err)
	}
	d.soloRecorded = true
	return release, nil
}

// keepTxAlive sends a no-op statement in watermill-sql's transaction tx,
// which carries the message at hand, when the transaction has been idle for
// Config.touchInterval: watermill-sql sends no statement between the
// messages of a batch, and the server ends a subscription session idle in
// its transaction for Config.HoldTimeout. It runs while watermill-sql
// waits for in's outcome; database/sql serialises it with the
// transaction's own statements should the ack deadline pass meanwhile.
// It reports false when the statement fails: the transaction cannot
// commit any more (a failed statement aborts it; its session may be gone).
// A session cut from outside between two such statements is not seen.
func (s *subscriber) keepTxAlive(tx *sql.Tx, g *gate, logger watermill.LoggerAdapter) bool {
	if g.idleFor() < s.b.cfg.touchInterval() {
		return true
	}
	// Not the message's context: cancelling a statement would break the
	// connection, and with it the batch's transaction.
	ctx, cancel := context.WithTimeout(context.Background(), bookkeepingTimeout)
	defer cancel()
	_, err := tx.ExecContext(ctx, `SELECT 1`)
	g.touched()
	if err != nil && !errors.Is(err, sql.ErrTxDone) { // done: watermill-sql ended the batch, giving the message up
		retry.Warn(logger, "The batch's transaction is gone; its other messages are left for the next batch", err, nil)
		return false
	}
	return true
}

// recordAck records the handler's ack: in watermill-sql's transaction
// while it still waits for the message (inTime), and on the batch's list
// (acks), or else as a late ack.
//
// The ack of a message that ran alone marks its row acked at once, before
// the other handlers go on: should the process die once they run, before
// watermill-sql's transaction commits, the message comes back settled
// (its redelivery acked without a handler), not as one more abandoned run,
// its count and history kept (a message dead-lettered unhandled stays so).
// So does a late ack: watermill-sql delivers the message again, here or to
// another consumer of the group, and the mark settles that delivery.
func (s *subscriber) recordAck(ctx context.Context, in *message.Message, d delivery, inTime bool, acked **delivery, acks *batchAcks, logger watermill.LoggerAdapter) {
	inTime = inTime && in.Context().Err() == nil
	tx, _ := wsql.TxFromContext(in.Context())
	if inTime && !d.abandoned {
		*acked = &d
		acks.add(tx, d.uuid)
		ackInner(in)
		return
	}
	bctx, cancel := s.bookkeeping(ctx)
	if err := s.b.ackDelivery(bctx, d); err != nil {
		logger.Error("Ack bookkeeping failed", err, nil)
	}
	cancel()
	if inTime {
		acks.add(tx, d.uuid)
		ackInner(in)
	}
}

// recordNack records the handler's nack and reports whether the relay
// should go on: the same subscription hands the message out again after
// its delay, unless it is stopping (the message is then left to the next
// batch). It calls recorded once the nack is recorded, before the delay.
func (s *subscriber) recordNack(ctx context.Context, in, msg *message.Message, d delivery, logger watermill.LoggerAdapter, recorded func()) bool {
	lastErr := msg.Metadata.Get(backend.MetadataLastError)
	if lastErr == "" {
		lastErr = "message nacked"
	}
	return s.retryLater(ctx, in, d, lastErr, nackDelay(msg), logger, recorded)
}

// retryLater records delivery d of in as failed with lastErr, calls
// recorded, and nacks in after retryDelay (see recordNack), reporting
// whether the relay should go on.
func (s *subscriber) retryLater(ctx context.Context, in *message.Message, d delivery, lastErr string, retryDelay time.Duration, logger watermill.LoggerAdapter, recorded func()) bool {
	bctx, cancel := s.bookkeeping(ctx)
	if err := s.b.failDelivery(bctx, d, lastErr, retryDelay); err != nil {
		logger.Error("Nack bookkeeping failed", err, nil)
	}
	cancel()
	recorded()
	if s.stopping(ctx) {
		return false
	}
	if wait := retryDelay - s.b.cfg.ResendInterval; wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return false
		case <-s.closing:
			return false
		}
	}
	in.Nack()
	return true
}

// ackInner acks watermill-sql's message and waits until its subscription
// has taken the ack (it ends the message's context then), so that closing
// the subscription right after cannot overtake the ack: watermill-sql
// chooses at random between the two.
func ackInner(in *message.Message) {
	in.Ack()
	<-in.Context().Done()
}

// markHeldAck marks acked the row of the held acked delivery (see deliver)
// before a message that is acked without a claim, which may end the batch.
// The batch's offset update may have deleted it already (when the held
// delivery ended the previous batch), so finding no row is expected here.
func (s *subscriber) markHeldAck(ctx context.Context, acked **delivery, logger watermill.LoggerAdapter) {
	if *acked == nil {
		return
	}
	bctx, cancel := s.bookkeeping(ctx)
	defer cancel()
	if err := s.b.markAcked(bctx, **acked); err != nil {
		logger.Error("Ack bookkeeping failed", err, nil)
	}
	*acked = nil
}

func (s *subscriber) unclaim(ctx context.Context, d delivery, logger watermill.LoggerAdapter) {
	bctx, cancel := s.bookkeeping(ctx)
	defer cancel()
	if err := s.b.unclaimDelivery(bctx, d); err != nil {
		logger.Error("Unclaim bookkeeping failed", err, nil)
	}
}

// outbound is the message handed to the handler: a copy of watermill-sql's
// message with the delivery metadata, and context ctx.
func outbound(ctx context.Context, in *message.Message, d delivery) *message.Message {
	msg := message.NewMessage(in.UUID, slices.Clone(in.Payload))
	msg.Metadata = make(message.Metadata, len(in.Metadata)+3)
	maps.Copy(msg.Metadata, in.Metadata)
	msg.Metadata.Set(backend.MetadataAttempt, strconv.Itoa(d.attempt))
	delete(msg.Metadata, backend.MetadataFirstFailedAt)
	delete(msg.Metadata, backend.MetadataLastError)
	delete(msg.Metadata, backend.MetadataAbandoned)
	if d.abandoned {
		msg.Metadata.Set(backend.MetadataAbandoned, strconv.Itoa(d.soloRuns))
	}
	if d.firstFailedAt.Valid {
		msg.Metadata.Set(backend.MetadataFirstFailedAt, formatTime(d.firstFailedAt.Time))
		msg.Metadata.Set(backend.MetadataLastError, d.lastError)
	}
	msg.SetContext(ctx)
	return msg
}

// nackDelay is the delay the retry middleware asked for through
// Watermill's delay metadata, or 0.
func nackDelay(msg *message.Message) time.Duration {
	if v := msg.Metadata.Get(delay.DelayedForKey); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	return 0
}

// pollBackoff is watermill-sql's BackoffManager for one subscription: idle
// polls back off from min to max, a poll that found the group busy waits
// busyWait, serialization failures retry at once. Failed polls (the server
// unreachable) back off too: from retry, doubling up to maxRetry, each wait
// jittered down by up to a half so that the subscriptions of many processes
// do not reconnect in step; a poll that works resets it.
//
// An outage is not logged once per failed poll: its first failed poll is
// an error record, then a warning at most every outageReportEvery while it
// lasts (with the count of failed polls and for how long), and a warning
// once a poll works again (see outageLog).
type pollBackoff struct {
	min, max, busyWait, retry, maxRetry time.Duration
	busy                                *atomic.Bool

	// Only touched by the subscription's goroutine:
	idle      time.Duration
	retryWait time.Duration // the last failed poll's wait before jitter; 0 when the last poll worked
	outage    outageLog
}

// newPollOutageLog is the outageLog of a subscription's polls.
func newPollOutageLog(reportEvery time.Duration) outageLog {
	return outageLog{failing: "Cannot poll messages", still: "Still cannot poll messages",
		recovered: "Polling messages works again", unit: "polls", reportEvery: reportEvery}
}

func (p *pollBackoff) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	switch {
	case err != nil && isLockConflict(err):
		p.worked(logger) // the server answered
		return 0
	case err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed)):
		return p.retry // stopping: nothing to log
	case err != nil:
		return p.failedPoll(logger, err)
	}
	p.worked(logger)
	switch {
	case noMsg && p.busy.Load():
		return p.busyWait
	case noMsg:
		p.idle = min(max(2*p.idle, p.min), p.max)
		return p.idle
	default:
		p.idle = 0
		return 0
	}
}

// failedPoll logs a failed poll as the outage stands (see pollBackoff) and
// returns the wait before the next one.
func (p *pollBackoff) failedPoll(logger watermill.LoggerAdapter, err error) time.Duration {
	p.retryWait = min(max(2*p.retryWait, p.retry), max(p.maxRetry, p.retry))
	wait := p.retryWait - time.Duration(rand.Int64N(int64(p.retryWait/2)+1))
	p.outage.failed(logger, err, watermill.LogFields{"retry_in": wait.String()})
	return wait
}

// worked ends an outage, if the polls were failing: a warning says so.
func (p *pollBackoff) worked(logger watermill.LoggerAdapter) {
	p.outage.worked(logger)
	p.retryWait = 0
}

// isLockConflict reports serialization failures and deadlocks, which a
// retry resolves. (With the advisory group lock, competing consumers no
// longer cause them; a row lock taken by some other client might.)
func isLockConflict(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	return false
}

// gate lets a subscription's transactions start only while its relay holds
// no message whose ack deadline passed (see deliver). It also keeps the
// time of the subscription's last statement that this package sent in
// its transaction (see keepTxAlive).
type gate struct {
	mu   sync.Mutex
	free chan struct{} // closed while the gate is open

	// lastStatement is the time of the last statement, as a duration
	// since born: monotonic, unlike Unix time, so that a step of the
	// host's clock neither skips keep-alive statements (the server would
	// then end a live batch's session) nor sends them needlessly.
	born          time.Time
	lastStatement atomic.Int64
}

// touched records that a statement was just sent in the subscription's
// transaction.
func (g *gate) touched() { g.lastStatement.Store(int64(time.Since(g.born))) }

// idleFor is the time since touched was last called.
func (g *gate) idleFor() time.Duration {
	return time.Since(g.born) - time.Duration(g.lastStatement.Load())
}

func newGate() *gate {
	g := &gate{free: make(chan struct{}), born: time.Now()}
	close(g.free)
	return g
}

func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.free:
		g.free = make(chan struct{})
	default:
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.free:
	default:
		close(g.free)
	}
}

func (g *gate) wait(ctx context.Context, stop <-chan struct{}) error {
	g.mu.Lock()
	free := g.free
	g.mu.Unlock()
	select {
	case <-free:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return ErrClosed
	}
}
