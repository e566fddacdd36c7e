package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/queue/backend"
)

// dlqListLimit caps the dead letters the Queue page lists.
const dlqListLimit = 100

// topicsView is the live topic table.
type topicsView struct {
	Topics []backend.TopicStats
	Down   string
}

// previewBytes is how much of a payload the dead-letter list shows; the
// whole payload is on the dead letter's own page.
const previewBytes = 512

// deadLetterRow is one dead letter of the list: the payload only as a
// preview, so that the list polled every few seconds stays small however
// large the payloads are.
type deadLetterRow struct {
	backend.DeadLetter // Payload dropped
	Preview            string
	// Size is the payload's length in bytes; Cut says the preview shows
	// only its first previewBytes.
	Size int
	Cut  bool
}

// dlqView is the live dead-letter table.
type dlqView struct {
	Letters   []deadLetterRow
	Truncated bool
	Down      string
	// PreviewBytes is how much of a payload a preview shows.
	PreviewBytes int
}

// newDeadLetterRow keeps a preview of dl's payload: all of it when short,
// else its first previewBytes (cut at a character boundary). The store's
// listing may hold only the start of the payload already (dl.PayloadCut);
// Size is then the whole payload's, from the store.
func newDeadLetterRow(dl backend.DeadLetter) deadLetterRow {
	r := deadLetterRow{DeadLetter: dl, Size: max(dl.PayloadSize, len(dl.Payload)), Cut: dl.PayloadCut()}
	p := dl.Payload
	if len(p) > previewBytes {
		p, r.Cut = backend.TrimPartialRune(p[:previewBytes]), true
	}
	r.Preview = payloadText(p)
	r.Payload = nil
	return r
}

// queueView is the Queue page.
type queueView struct {
	QueueName string
	Topics    template.HTML
	Outboxes  template.HTML
	DLQ       template.HTML
}

// outboxRow is one service's outbox: messages it committed and has not
// forwarded to the queue yet (its admin API's GET /outbox), or why that
// is unknown.
type outboxRow struct {
	Service string
	Pending int64
	Down    string
}

// loadOutboxes asks every service at once.
func (s *Server) loadOutboxes(ctx context.Context) []outboxRow {
	return askEveryService(ctx, s.services, func(ctx context.Context, sv service) outboxRow {
		n, err := sv.Admin.OutboxPending(ctx)
		if err != nil {
			return outboxRow{Service: sv.Name, Down: downText(err)}
		}
		return outboxRow{Service: sv.Name, Pending: n}
	})
}

func (s *Server) outboxesRegion(p *page, rows []outboxRow) (template.HTML, error) {
	h, _, err := s.liveHTML("queue", "outboxes", pageWith(p, rows), "outboxes", "/queue/outboxes", s.cfg.Refresh*2, "")
	return h, err
}

func (s *Server) outboxesLive(c echo.Context) error {
	p := s.newPage(c, "", "queue")
	return s.writeLive(c, "queue", "outboxes", pageWith(p, s.loadOutboxes(c.Request().Context())),
		"outboxes", "/queue/outboxes", s.cfg.Refresh*2, "")
}

func queueDownText(err error) string {
	if errors.Is(err, ErrQueueUnavailable) {
		return err.Error()
	}
	return "queue unavailable: " + err.Error()
}

func (s *Server) loadTopics(ctx context.Context) topicsView {
	st, err := s.queue.Stats(ctx)
	if err != nil {
		return topicsView{Down: queueDownText(err)}
	}
	return topicsView{Topics: st}
}

func (s *Server) loadDLQ(ctx context.Context) dlqView {
	dls, err := s.queue.DeadLetters(ctx, backend.DeadLetterFilter{Limit: dlqListLimit + 1})
	if err != nil {
		return dlqView{Down: queueDownText(err)}
	}
	v := dlqView{PreviewBytes: previewBytes}
	if len(dls) > dlqListLimit {
		dls, v.Truncated = dls[:dlqListLimit], true
	}
	for _, dl := range dls {
		v.Letters = append(v.Letters, newDeadLetterRow(dl))
	}
	return v
}

func (s *Server) topicsRegion(p *page, v topicsView) (template.HTML, error) {
	h, _, err := s.liveHTML("queue", "topics", pageWith(p, v), "topics", "/queue/topics", s.cfg.Refresh*2, "dlq-changed from:body")
	return h, err
}

func (s *Server) dlqRegion(p *page, v dlqView) (template.HTML, error) {
	h, _, err := s.liveHTML("queue", "dlq", pageWith(p, v), "dlq", "/queue/dlq", s.cfg.Refresh*2, "")
	return h, err
}

func (s *Server) queuePage(c echo.Context) error {
	p := s.newPage(c, "Queue", "queue")
	return s.writeQueuePage(c, p)
}

func (s *Server) writeQueuePage(c echo.Context, p *page) error {
	ctx := c.Request().Context()
	v := queueView{QueueName: RedactURL(s.cfg.QueueName)}
	var (
		topics   topicsView
		outboxes []outboxRow
		dlq      dlqView
	)
	err := s.loadWithBanner(ctx, p, func() { topics = s.loadTopics(ctx) }, func() { outboxes = s.loadOutboxes(ctx) }, func() { dlq = s.loadDLQ(ctx) })
	if err != nil {
		return err
	}
	if v.Topics, err = s.topicsRegion(p, topics); err != nil {
		return err
	}
	if v.Outboxes, err = s.outboxesRegion(p, outboxes); err != nil {
		return err
	}
	if v.DLQ, err = s.dlqRegion(p, dlq); err != nil {
		return err
	}
	p.Data = v
	return s.writePage(c, "queue", p)
}

func (s *Server) topicsLive(c echo.Context) error {
	p := s.newPage(c, "", "queue")
	return s.writeLive(c, "queue", "topics", pageWith(p, s.loadTopics(c.Request().Context())),
		"topics", "/queue/topics", s.cfg.Refresh*2, "dlq-changed from:body")
}

func (s *Server) deadLettersLive(c echo.Context) error {
	p := s.newPage(c, "", "queue")
	return s.writeLive(c, "queue", "dlq", pageWith(p, s.loadDLQ(c.Request().Context())),
		"dlq", "/queue/dlq", s.cfg.Refresh*2, "")
}

func deadLetterID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, &pageError{status: http.StatusNotFound, title: "No such dead letter",
			detail: fmt.Sprintf("A dead letter id is a positive number, not %q.", c.Param("id"))}
	}
	return id, nil
}

func (s *Server) deadLetterPage(c echo.Context) error {
	id, err := deadLetterID(c)
	if err != nil {
		return err
	}
	p := s.newPage(c, fmt.Sprintf("Dead letter %d", id), "queue")
	var dl backend.DeadLetter
	ctx := c.Request().Context()
	if lerr := s.loadWithBanner(ctx, p, func() { dl, err = s.queue.DeadLetter(ctx, id) }); lerr != nil {
		return lerr
	}
	v := struct {
		ID       int64
		Letter   *backend.DeadLetter
		NotFound bool
		Down     string
	}{ID: id}
	switch {
	case err == nil:
		v.Letter = &dl
	case errors.Is(err, backend.ErrNotFound):
		v.NotFound, p.Status = true, http.StatusNotFound
	default:
		v.Down = queueDownText(err)
	}
	p.Data = v
	return s.writePage(c, "deadletter", p)
}

// dlqAction runs one dead-letter action and answers with the dead-letter
// table and a flash.
func (s *Server) dlqAction(c echo.Context, act func(ctx context.Context) (*flash, int)) error {
	ctx := c.Request().Context()
	fl, status := act(ctx)
	if !isHTMX(c) {
		if status == http.StatusOK {
			return redirectWithFlash(c, "/queue#dlq", fl)
		}
		p := s.newPage(c, "Queue", "queue")
		p.Flash, p.Status = fl, status
		return s.writeQueuePage(c, p)
	}
	p := s.newPage(c, "", "queue")
	region, err := s.dlqRegion(p, s.loadDLQ(ctx))
	if err != nil {
		return err
	}
	return s.writeAction(c, status, region, fl, "dlq-changed")
}

func (s *Server) replayDeadLetter(c echo.Context) error {
	id, err := deadLetterID(c)
	if err != nil {
		return err
	}
	return s.dlqAction(c, func(ctx context.Context) (*flash, int) {
		err := s.queue.Replay(ctx, id)
		switch {
		case err == nil:
			return flashOK(fmt.Sprintf("Dead letter %d replayed: it is back on its topic, for its consumer group only.", id)), http.StatusOK
		case errors.Is(err, backend.ErrNotFound):
			return flashError(fmt.Sprintf("Dead letter %d is gone (replayed or purged already).", id)), http.StatusNotFound
		case errors.Is(err, errQueueNoAnswer):
			return flashError(fmt.Sprintf("Dead letter %d may or may not be replayed: %v. Look at the dead-letter queue before you try again.", id, err)),
				http.StatusServiceUnavailable
		case errors.Is(err, ErrQueueUnavailable):
			return flashError("Not replayed: " + err.Error()), http.StatusServiceUnavailable
		}
		return flashError(fmt.Sprintf("Dead letter %d not replayed: %v", id, err)), http.StatusBadGateway
	})
}

func (s *Server) replayAll(c echo.Context) error {
	return s.dlqAction(c, func(ctx context.Context) (*flash, int) {
		n, err := s.queue.ReplayAll(ctx, backend.DeadLetterFilter{})
		switch {
		case err == nil && n == 0:
			return flashOK("There was nothing to replay."), http.StatusOK
		case err == nil:
			return flashOK(backend.CountDeadLetters(n) + " replayed."), http.StatusOK
		case errors.Is(err, errQueueNoAnswer):
			return flashError(fmt.Sprintf("Some, all or none of the dead letters may be replayed: %v. Look at the dead-letter queue before you try again.", err)),
				http.StatusServiceUnavailable
		case errors.Is(err, ErrQueueUnavailable):
			return flashError("Nothing replayed: " + err.Error()), http.StatusServiceUnavailable
		}
		return flashError(fmt.Sprintf("%s replayed, then: %v", backend.CountDeadLetters(n), err)), http.StatusBadGateway
	})
}

func (s *Server) purge(c echo.Context) error {
	confirmed := c.FormValue("confirm") == "yes"
	return s.dlqAction(c, func(ctx context.Context) (*flash, int) {
		if !confirmed {
			return flashError("Nothing purged: tick “Yes, delete every dead letter” to confirm."), http.StatusUnprocessableEntity
		}
		n, err := s.queue.Purge(ctx, backend.DeadLetterFilter{})
		switch {
		case err == nil:
			return flashOK(backend.CountDeadLetters(n) + " purged."), http.StatusOK
		case errors.Is(err, errQueueNoAnswer):
			return flashError(fmt.Sprintf("Some, all or none of the dead letters may be purged: %v. Look at the dead-letter queue before you try again.", err)),
				http.StatusServiceUnavailable
		case errors.Is(err, ErrQueueUnavailable):
			return flashError("Nothing purged: " + err.Error()), http.StatusServiceUnavailable
		}
		return flashError(fmt.Sprintf("Purge failed: %v", err)), http.StatusBadGateway
	})
}
