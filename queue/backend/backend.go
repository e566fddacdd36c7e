// Package backend declares what every queue backend (SQLite, PostgreSQL)
// provides to the rest of the queue module: a Watermill publisher, subscribers
// per consumer group, a dead-letter store and read-only statistics.
//
// It holds no implementation, so the backends, the retry middleware and the
// queuectl CLI can all depend on it without depending on each other.
package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys the backends set on delivered messages or read from them.
// Every key is part of the wire contract between processes: do not rename.
const (
	// MetadataAttempt is the delivery attempt of this message to this
	// consumer group, starting at 1. It is persisted by the backend, so it
	// survives restarts of the consumer.
	MetadataAttempt = "attempt"
	// MetadataFirstFailedAt is the RFC 3339 (nanosecond) time of the first
	// failed attempt in this consumer group; empty before any failure.
	MetadataFirstFailedAt = "first_failed_at"
	// MetadataLastError is the error of the previous failed attempt.
	MetadataLastError = "last_error"
	// MetadataReplayForGroup, when set, restricts a message to one consumer
	// group: subscribers of every other group ack it without handling it.
	// Dead-letter replay sets it so that a replay reaches only the group
	// that failed.
	MetadataReplayForGroup = "replay_for_group"
	// MetadataReplayID is set by dead-letter replay to an id of its own on
	// every replay, so that a backend can tell two publications of one
	// message id apart: a message acked once and delivered again is
	// settled, a replay of it is handled.
	MetadataReplayID = "replay_id"
	// MetadataReplayedFrom is set by dead-letter replay
	// (queue.ReplayDeadLetter) on the message it publishes: the id of the
	// dead letter replayed, in decimal. MetadataReplayedAt is set with it:
	// when the replay published the message (RFC 3339, nanoseconds, UTC).
	// The tracing middleware turns them into a "replay" span event, so that
	// a trace shows why a dead-lettered message was handled again.
	//
	// Unlike MetadataReplayID they describe the message, not one
	// delivery: a replayed message dead-lettered again keeps them in its
	// new dead letter (which tells an operator that it failed after a
	// replay already), and a replay of that dead letter overwrites both.
	// The dead letter's reason travels with them under
	// MetadataDeadLetterReason, which a replay keeps.
	MetadataReplayedFrom = "replayed_from_dead_letter"
	MetadataReplayedAt   = "replayed_at"
	// MetadataDeadLetterReason says why a message was dead-lettered (the
	// retry middleware's reasons: retry.ReasonMaxAttempts and the others);
	// it is set on the dead letter's copy of the message. A replay keeps
	// it on the message it publishes, with MetadataReplayedFrom; the next
	// dead-lettering replaces it.
	MetadataDeadLetterReason = "dead_letter_reason"
	// MetadataAbandoned is set on a message whose previous delivery to
	// this consumer group was abandoned: handed to a handler, then neither
	// acked nor nacked, because the process died (on SQLite, also froze:
	// its lease ran out; on PostgreSQL the process's sessions ended with
	// it, while a live one's delivery taken over at the ack deadline does
	// not count). Such a message
	// runs alone in its process (see Backend); the value is how many of
	// those runs alone were abandoned in a row before this delivery, "0"
	// for the first. The retry middleware dead-letters the message once
	// the count reaches its limit, so that a message that takes its
	// process down (a fatal error, an out-of-memory kill) does not do so
	// for ever.
	MetadataAbandoned = "abandoned"
)

// ErrNotFound is returned when a dead letter (or another addressed record)
// does not exist.
var ErrNotFound = errors.New("not found")

// ErrLeaseLost is reported when an ack, nack or lease extension arrives after
// the delivery was claimed by another consumer (its lease had expired). The
// message has been or will be handled again by that consumer.
var ErrLeaseLost = errors.New("lease lost")

// Backend is one queue store, opened from a queue URL. All methods are safe
// for concurrent use. Close releases the store; subscribers and publishers
// obtained from it must be closed first.
//
// A backend that can lose a handler's outcome to a crash (SQLite,
// PostgreSQL) hands out a message whose previous delivery was abandoned
// (MetadataAbandoned) only once no other handler of the backend's
// subscribers runs, and runs none beside it until its outcome is stored:
// should it take the process down again, no other message shares the
// blame. It records each such run before the handler starts, so that the
// count survives the crash. The isolation is per backend: a process
// normally opens one, and two in one process do not wait for each other.
// While such a message waits for the handlers running to finish, no other
// message of the backend is handed out; a handler that has not finished
// within a bound (10 s; a hung one) does not hold the process up: the
// message then runs beside it, that run not recorded.
type Backend interface {
	// Publisher returns the backend's shared publisher. Publish returns
	// only once the messages are durably stored.
	Publisher() message.Publisher
	// Subscriber returns a subscriber for one consumer group: every group
	// receives every message of a topic; subscribers of the same group
	// compete for messages.
	Subscriber(cfg SubscriberConfig) (message.Subscriber, error)
	// DeadLetters is where messages that failed too often are kept.
	DeadLetters() DeadLetterStore
	// Inspector reports topics, depths and lag.
	Inspector() Inspector
	// Name is the backend's scheme, "sqlite" or "postgres".
	Name() string
	Close() error
}

// SubscriberConfig selects a consumer group and how many messages a
// subscriber handles at once. Zero values take the backend's defaults.
type SubscriberConfig struct {
	// ConsumerGroup names the group; required.
	ConsumerGroup string
	// Concurrency is how many messages one Subscribe call hands out
	// before the first is acked or nacked. 1 (the default) keeps the
	// order of a single subscriber.
	Concurrency int
	// OnDeadLetter, when set, is called with the topic of each message
	// the backend itself dead-letters for the group, without handing it
	// out (the PostgreSQL backend's unreadable rows,
	// retry.ReasonUnreadable), once the dead letter is stored: for the
	// metrics that count the retry middleware's dead letters. Backends
	// that never do so ignore it.
	OnDeadLetter func(topic string)
}

// Validate reports a config that no backend can serve.
func (c SubscriberConfig) Validate() error {
	if c.ConsumerGroup == "" {
		return errors.New("consumer group is required")
	}
	if c.Concurrency < 0 {
		return errors.New("concurrency must not be negative")
	}
	return nil
}

// DeadLetter is a message that a consumer group gave up on, with why.
type DeadLetter struct {
	ID            int64  `json:"id"`
	MessageUUID   string `json:"message_uuid"`
	Topic         string `json:"topic"`
	ConsumerGroup string `json:"consumer_group"`
	Payload       []byte `json:"payload"`
	// PayloadSize is the size of the whole payload in bytes. Get returns
	// the whole payload; List only its first ListPayloadPreview bytes (see
	// PayloadCut).
	PayloadSize   int               `json:"payload_size"`
	Metadata      map[string]string `json:"metadata"`
	Attempts      int               `json:"attempts"`
	LastError     string            `json:"last_error"`
	FirstFailedAt time.Time         `json:"first_failed_at"`
	LastFailedAt  time.Time         `json:"last_failed_at"`
	DeadAt        time.Time         `json:"dead_at"`
}

// ListPayloadPreview is how many bytes of each payload a dead-letter List
// returns: a poison message can be megabytes, and a listing of a hundred
// of them must not load them all (nor every refresh of a page showing
// them). Get returns the whole payload; replays use Get.
const ListPayloadPreview = 4096

// PayloadCut reports whether Payload holds less than the whole payload, as
// in a List result.
func (dl DeadLetter) PayloadCut() bool { return len(dl.Payload) < dl.PayloadSize }

// PreviewPayload returns the first ListPayloadPreview bytes of p, for the
// stores' List. A text payload stays text: the cut moves back to the start
// of a character it would split.
func PreviewPayload(p []byte) []byte {
	if len(p) <= ListPayloadPreview {
		return p
	}
	return TrimPartialRune(p[:ListPayloadPreview])
}

// TrimPartialRune drops the bytes of a character cut off at the end of
// prefix (at most 3), when what comes before them is valid UTF-8: the
// preview of a text payload, read as a byte prefix, then stays valid text.
// Other bytes are returned as they are.
func TrimPartialRune(prefix []byte) []byte {
	for n := 1; n <= utf8.UTFMax-1 && n <= len(prefix); n++ {
		if utf8.RuneStart(prefix[len(prefix)-n]) {
			if !utf8.FullRune(prefix[len(prefix)-n:]) && utf8.Valid(prefix[:len(prefix)-n]) {
				return prefix[:len(prefix)-n]
			}
			break
		}
	}
	return prefix
}

// StorableText returns s as valid UTF-8 without NUL bytes, each run of
// invalid bytes and each NUL replaced by U+FFFD: PostgreSQL's text columns
// refuse either, and a dead letter whose error text cannot be stored would
// leave its message neither retried to the end nor dead-lettered. Error
// texts quote payloads and metadata, which may hold anything.
func StorableText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// DeadLetterFilter narrows List and Purge; zero fields match everything.
type DeadLetterFilter struct {
	Topic         string
	ConsumerGroup string
	// AfterID keeps only entries with a greater ID. List returns entries
	// in ID order, so passing the last ID of one page gives the next.
	AfterID int64
	// DeadBefore, when not zero, keeps only entries last dead-lettered
	// (DeadAt) before it: the old ones, which nothing deletes but a purge
	// (queuectl dlq purge --older-than).
	DeadBefore time.Time
	// Newest makes List return the entries with the highest IDs first (IDs
	// grow: a newer entry has a higher one).
	Newest bool
	// Limit caps List; 0 means the store's default (100).
	Limit int
}

// DeadLetterStore keeps dead letters. Put stores one entry per
// (consumer group, message UUID): a message dead-lettered twice, for example
// after a crash between Put and the ack, or again after a replay, is stored
// once. A Put for a stored entry refreshes it (attempts, last error, last
// failure, metadata; the first failure stays) and moves its DeadAt forward,
// at least 1 ms past the stored one, so that DeadAt tells the versions of
// an entry apart (see DeleteIfUnchanged).
type DeadLetterStore interface {
	Put(ctx context.Context, dl DeadLetter) error
	List(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error)
	// Get returns ErrNotFound (wrapped) for an unknown id.
	Get(ctx context.Context, id int64) (DeadLetter, error)
	// Delete removes one dead letter; ErrNotFound if it is gone.
	Delete(ctx context.Context, id int64) error
	// DeleteIfUnchanged removes dead letter id only if its DeadAt is
	// still deadAt, that is, nobody dead-lettered the message again since
	// it was read, and reports whether it removed it. A replay needs
	// this: the message it put back may fail and be dead-lettered again
	// before the replay removes the old entry, which must then stay.
	DeleteIfUnchanged(ctx context.Context, id int64, deadAt time.Time) (bool, error)
	// Purge deletes what matches and says how many.
	Purge(ctx context.Context, f DeadLetterFilter) (int, error)
}

// Inspector reads the state of the queue without changing it.
type Inspector interface {
	// Topics lists every topic the store knows, sorted; an empty list,
	// not nil, when it knows none (JSON shows [], not null).
	Topics(ctx context.Context) ([]string, error)
	// Stats reports every topic with its consumer groups; a topic without
	// groups has an empty Groups list, not nil (JSON shows [], not null).
	Stats(ctx context.Context) ([]TopicStats, error)
}

// TopicStats is one topic's state.
type TopicStats struct {
	Topic string `json:"topic"`
	// Stored is how many messages of the topic the store holds.
	Stored int64 `json:"stored"`
	// DeadLetters is how many of its messages are in the dead-letter store.
	DeadLetters int64 `json:"dead_letters"`
	// Groups are the topic's consumer groups, sorted by name; empty, not
	// nil, when it has none.
	Groups []GroupStats `json:"groups"`
}

// GroupStats is one consumer group's view of a topic.
type GroupStats struct {
	ConsumerGroup string `json:"consumer_group"`
	// Depth is how many messages wait for this group (not yet acked),
	// in flight included.
	Depth int64 `json:"depth"`
	// InFlight is how many are claimed by a consumer right now.
	InFlight int64 `json:"in_flight"`
	// Abandoned is how many were handed to a handler whose consumer then
	// died (on SQLite: or froze past its lease) without an outcome: each
	// will run alone in its consumer's process (MetadataAbandoned). A
	// crash leaves about as many as the dead process had claimed; they
	// go as soon as a consumer of the group takes them. Not in InFlight.
	Abandoned int64 `json:"abandoned"`
	// OldestAge is the age of the oldest message the group has not acked.
	OldestAge time.Duration `json:"oldest_age_ns"`
	// Retrying is how many wait for a retry after a failure.
	Retrying int64 `json:"retrying"`
	// MaxAttempt is the highest delivery attempt among the messages the
	// group has not acked (0 when none was delivered yet). One that climbs
	// at each restart of a consumer while Depth does not fall is a message
	// whose handler takes the consumer's process down with it, until it
	// is dead-lettered as abandoned. Backends that keep no attempts
	// (in-process) leave it 0.
	MaxAttempt int64 `json:"max_attempt"`
}

// MaxTopicLength bounds topic names so that every backend can store them:
// PostgreSQL's table "watermill_offsets_<topic>" must fit its 63-byte
// identifiers (longer ones are truncated silently and could collide).
const MaxTopicLength = 63 - len("watermill_offsets_")

// ValidateTopic rejects topic names that some backend cannot store safely.
// A topic is 1 to MaxTopicLength characters from [A-Za-z0-9._-], starting
// with a letter or digit. Every backend calls it on Publish and Subscribe,
// so a bad name fails the same way everywhere.
func ValidateTopic(topic string) error {
	if topic == "" {
		return errors.New("topic name is empty")
	}
	if len(topic) > MaxTopicLength {
		return fmt.Errorf("topic name %q is %d characters long; at most %d are allowed", topic, len(topic), MaxTopicLength)
	}
	for i, r := range topic {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '.' || r == '_' || r == '-')
		if !ok {
			return fmt.Errorf("topic name %q: character %q at byte %d is not allowed (use letters, digits, '.', '_', '-'; start with a letter or digit)", topic, r, i)
		}
	}
	return nil
}

// MaxUUIDLength bounds message UUIDs so that every backend can store them:
// watermill-sql's PostgreSQL schema keeps them in a VARCHAR(36), the width
// of a UUID's text form.
const MaxUUIDLength = 36

// ValidateUUID rejects a message UUID that some backend cannot store, or
// that an idempotent consumer could not tell from another: empty, or
// longer than MaxUUIDLength bytes. Every backend calls it on Publish, so a
// message that is published on SQLite is published on PostgreSQL too, and
// the outbox calls it when a message is stored, so that such a message
// fails the transaction that stores it instead of being refused by the
// queue each time the forwarder tries it.
func ValidateUUID(uuid string) error {
	if uuid == "" || len(uuid) > MaxUUIDLength {
		return fmt.Errorf("message uuid %q must have 1 to %d characters", uuid, MaxUUIDLength)
	}
	return nil
}

// StoredMessage is a message as a Tailer reads it from the store.
type StoredMessage struct {
	Offset    int64             `json:"offset"`
	UUID      string            `json:"uuid"`
	Topic     string            `json:"topic"`
	Payload   []byte            `json:"payload"`
	Metadata  map[string]string `json:"metadata"`
	CreatedAt time.Time         `json:"created_at"`
}

// Tailer is implemented by backends that can show a topic's messages
// without consuming them (for queuectl tail). It is best effort: a message
// acknowledged by every group and collected between two reads is not shown.
// The PostgreSQL backend does not implement it: its messages become
// readable in transaction order, not offset order, so it follows a position
// of its own (postgres.Backend.TailEnd and ReadTail).
type Tailer interface {
	// ReadAfter returns up to limit messages of topic with an offset
	// greater than after, oldest first. LastOffset gives the newest offset,
	// to start tailing from now.
	ReadAfter(ctx context.Context, topic string, after int64, limit int) ([]StoredMessage, error)
	LastOffset(ctx context.Context, topic string) (int64, error)
}

// ErrUnknownTopic and ErrUnknownGroup are returned (wrapped, with the
// topic and the group named) by GroupDropper.DropGroup for a topic the
// store does not know, and for a consumer group that is not subscribed to
// a topic it knows.
var (
	ErrUnknownTopic = errors.New("no such topic")
	ErrUnknownGroup = errors.New("no such consumer group on the topic")
)

// GroupDropper is implemented by backends that can remove a consumer group
// from a topic (for queuectl group drop). A group, once subscribed to a
// topic, is kept for good otherwise: every later message of the topic is
// kept for it until it acks it, so a group whose service was renamed or
// retired (or one made by mistake) holds the topic's messages back from
// collection for ever.
type GroupDropper interface {
	// DropGroup removes group from topic: its subscription and what the
	// store keeps for it (SQLite: its deliveries; PostgreSQL: its offset
	// and its delivery records). The messages only it had not acked are
	// then collected as those every remaining group acked are, at the next
	// collection of a process that collects (the services; SQLite: a topic
	// left without groups keeps its messages for the orphan retention,
	// PostgreSQL: until a group subscribes again, as a topic nobody ever
	// subscribed to does). The group's dead letters are kept: replaying
	// one reaches nobody while the group is not subscribed (every other
	// group acks a replay unhandled), so purge them or replay them after
	// the group subscribes again.
	//
	// A consumer of the group still running when it is dropped gets
	// nothing more (SQLite: an ack or nack of a message it holds fails, as
	// after its lease ran out; PostgreSQL: the drop waits for the batch it
	// handles), until it subscribes again, as a process of the group does
	// when it starts: that registers the group anew, as a group new to the
	// topic, which receives every message of the topic still stored. Drop
	// a group once its services are stopped for good.
	//
	// It returns ErrUnknownTopic or ErrUnknownGroup (wrapped) when there
	// is nothing to drop, and a topic name that is not valid (see
	// ValidateTopic) as an error of its own.
	DropGroup(ctx context.Context, topic, group string) (DroppedGroup, error)
}

// DroppedGroup reports what GroupDropper.DropGroup removed.
type DroppedGroup struct {
	Topic         string `json:"topic"`
	ConsumerGroup string `json:"consumer_group"`
	// Pending is how many messages of the topic the group had not acked
	// (its depth): no longer kept for it.
	Pending int64 `json:"pending"`
	// DeadLetters is how many dead letters of the group on the topic the
	// store keeps: they are not removed.
	DeadLetters int64 `json:"dead_letters"`
}
