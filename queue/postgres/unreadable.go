package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/retry"
)

// readingSchema is the schema adapter of one subscription: watermill-sql's
// default PostgreSQL schema with an UnmarshalMessage of its own. The
// default's fails the whole poll on a row it cannot read, so the consumer
// group reads that row again at every poll and never gets past it, nor
// hands out the messages of its batch before it. A topic's table may hold
// rows that this package's publisher did not write (another watermill-sql
// publisher, a hand-written INSERT): metadata that is JSON but no object
// of strings ([1,2], {"a": 1}), text that is no JSON at all (in a table
// made with another column type), a message uuid that an idempotent
// consumer cannot tell apart (empty). Here such a row becomes a message
// that carries, under unreadableKey alone, what is wrong with it (an
// unreadableRow); the relay dead-letters it for its group instead of
// handing it out (see subscriber.deadLetterUnreadable), and the group goes
// on past it.
//
// A row that cannot even be scanned (a column of another type than the
// schema's) still fails the poll, as in watermill-sql.
type readingSchema struct {
	wsql.DefaultPostgreSQLSchema
	topic string
	// unreadableKey is the metadata key of the subscriber's unreadable
	// rows: random, so that no message stored by anyone carries it.
	unreadableKey string
}

// newUnreadableKey returns a metadata key that no stored message holds.
func newUnreadableKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "orderflow_queue_unreadable_" + hex.EncodeToString(b[:])
}

// unreadableRow is what the relay learns of a row readingSchema could not
// read.
type unreadableRow struct {
	// UUID is the message id its dead letter is kept under: the row's, or
	// a stand-in naming the topic and offset when the row has none.
	UUID string `json:"uuid"`
	// Reason says which row it is and what is wrong with it: the dead
	// letter's last error.
	Reason string `json:"reason"`
	// Metadata are the entries of the row's metadata that could be read
	// (string values of a JSON object), kept with the dead letter: a
	// trace context among them, for one.
	Metadata map[string]string `json:"metadata"`
}

// quotedMetadataLen bounds how much of a row's unreadable metadata its
// reason quotes.
const quotedMetadataLen = 200

// UnmarshalMessage reads a row as watermill-sql's default does (the same
// columns, the same Row), except that a row whose metadata or uuid cannot
// be used does not fail: its message holds the unreadableRow under
// unreadableKey, and nothing else.
func (s readingSchema) UnmarshalMessage(row wsql.Scanner) (wsql.Row, error) {
	r := wsql.Row{}
	var transactionID int64
	if err := row.Scan(&r.Offset, &transactionID, &r.UUID, &r.Payload, &r.Metadata); err != nil {
		return wsql.Row{}, fmt.Errorf("could not scan message row: %w", err)
	}
	r.ExtraData = map[string]any{"transaction_id": transactionID}
	uuid := string(r.UUID)
	r.Msg = message.NewMessage(uuid, r.Payload)

	u := unreadableRow{UUID: uuid}
	var problems []string
	if err := backend.ValidateUUID(uuid); err != nil {
		if uuid == "" {
			u.UUID = fmt.Sprintf("%s@%d", s.topic, r.Offset)
			err = fmt.Errorf("%w (dead-lettered as %q)", err, u.UUID)
		}
		problems = append(problems, err.Error())
	}
	if r.Metadata != nil {
		if err := json.Unmarshal(r.Metadata, &r.Msg.Metadata); err != nil {
			problems = append(problems, fmt.Sprintf("metadata is not a JSON object of strings (%v): %s", err, quoteMetadata(r.Metadata)))
		}
	}
	if len(problems) == 0 {
		return r, nil
	}
	u.Reason = fmt.Sprintf("unreadable message %q, offset %d (transaction %d) of table %s: %s",
		uuid, r.Offset, transactionID, s.MessagesTable(s.topic), strings.Join(problems, "; "))
	u.Metadata = readableMetadata(r.Metadata)
	text, err := json.Marshal(u)
	if err != nil {
		return wsql.Row{}, fmt.Errorf("describe unreadable row at offset %d: %w", r.Offset, err)
	}
	r.Msg.Metadata = message.Metadata{s.unreadableKey: string(text)}
	return r, nil
}

// quoteMetadata returns raw for an error text: valid UTF-8, at most
// quotedMetadataLen bytes of it, cut on a character boundary with "…".
func quoteMetadata(raw []byte) string {
	s := backend.StorableText(string(raw))
	if len(s) <= quotedMetadataLen {
		return s
	}
	n := quotedMetadataLen
	for n > 0 && s[n]&0xc0 == 0x80 { // a continuation byte
		n--
	}
	return s[:n] + "…"
}

// readableMetadata returns the entries of raw, a JSON object, whose values
// are strings (or null, read as ""): none when raw is no JSON object.
func readableMetadata(raw []byte) map[string]string {
	md := map[string]string{}
	var entries map[string]json.RawMessage
	if json.Unmarshal(raw, &entries) != nil {
		return md
	}
	for k, v := range entries {
		var s string
		if json.Unmarshal(v, &s) == nil {
			md[k] = s
		}
	}
	return md
}

// unreadable returns what readingSchema found wrong with in's row, and
// false for a message it read.
func (s *subscriber) unreadable(in *message.Message) (unreadableRow, bool) {
	text, ok := in.Metadata[s.unreadableKey]
	if !ok {
		return unreadableRow{}, false
	}
	var u unreadableRow
	if err := json.Unmarshal([]byte(text), &u); err != nil {
		// Not written by readingSchema: cannot happen, but the row is
		// unreadable all the same.
		u = unreadableRow{Reason: fmt.Sprintf("unreadable message %q: %v", in.UUID, err)}
	}
	if u.UUID == "" {
		u.UUID = in.UUID
	}
	if u.Metadata == nil {
		u.Metadata = map[string]string{}
	}
	return u, true
}

// deadLetterUnreadable dead-letters for the subscriber's group the message
// of a row readingSchema could not read (u), claimed as delivery d, without
// handing it out, and reports whether the relay should go on. The dead
// letter has what a handler's would (retry.NewMiddleware): the topic, the
// group, the attempts and the failure times of d, the payload, and the
// metadata that could be read, with retry.MetadataDeadLetterReason
// retry.ReasonUnreadable; its last error is u.Reason. It is counted
// (backend.SubscriberConfig.OnDeadLetter). Then the message is acked as a
// handler's ack would be, so that the group's offset moves past it with
// its batch.
//
// When the dead-letter store refuses it, the failure is recorded on d and
// the message is nacked, to be dead-lettered again after RetryInterval:
// never acked before its dead letter is stored.
func (s *subscriber) deadLetterUnreadable(ctx context.Context, topic string, in *message.Message, u unreadableRow, d delivery, acked **delivery, acks *batchAcks, logger watermill.LoggerAdapter) bool {
	now := time.Now().UTC()
	first := now
	if d.firstFailedAt.Valid {
		first = d.firstFailedAt.Time
	}
	u.Metadata[retry.MetadataDeadLetterReason] = retry.ReasonUnreadable
	dl := backend.DeadLetter{
		MessageUUID:   u.UUID,
		Topic:         topic,
		ConsumerGroup: s.group,
		Payload:       in.Payload,
		Metadata:      u.Metadata,
		Attempts:      d.attempt,
		LastError:     u.Reason,
		FirstFailedAt: first,
		LastFailedAt:  now,
	}
	bctx, cancel := s.bookkeeping(ctx)
	err := s.b.DeadLetters().Put(bctx, dl)
	cancel()
	if err != nil {
		logger.Error("Cannot dead-letter an unreadable message; it is tried again", err,
			watermill.LogFields{"reason": u.Reason, "retry_in": s.b.cfg.RetryInterval.String()})
		return s.retryLater(ctx, in, d, fmt.Sprintf("%s; dead-lettering failed: %v", u.Reason, err), s.b.cfg.RetryInterval, logger, func() {})
	}
	logger.Error("Unreadable message dead-lettered", errors.New(u.Reason), watermill.LogFields{"attempt": d.attempt, "reason": retry.ReasonUnreadable})
	if s.onDeadLetter != nil {
		s.onDeadLetter(topic)
	}
	s.recordAck(ctx, in, d, true, acked, acks, logger)
	return true
}
