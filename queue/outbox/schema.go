package outbox

import (
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// DefaultBatchSize is how many messages one forwarding transaction reads when
// SchemaAdapter.BatchSize is zero.
const DefaultBatchSize = 16

// maxInsertMessages keeps one INSERT under SQLite's default limit of 32766
// bound parameters (four per message).
const maxInsertMessages = 8000

// SchemaAdapter is a watermill-sql SchemaAdapter for SQLite.
//
// Every Watermill topic gets its own table, "watermill_<topic>" (the naming of
// watermill-sql's MySQL and PostgreSQL schemas), with an
// INTEGER PRIMARY KEY AUTOINCREMENT offset: SQLite never reuses such an id,
// even after the rows holding the largest ids are deleted, so a consumer
// group's acked offset can never be overtaken by a recycled one. Writers are
// serialised by SQLite's single write lock, so offsets become visible in
// commit order and a consumer reading "offset > acked" never skips a row that
// commits later with a smaller offset (the problem PostgreSQL's adapter solves
// with transaction ids).
//
// The adapter assumes the subscriber's transaction holds the write lock from
// its first statement (a DSN with _txlock=immediate, or the Forwarder, which
// takes the lock itself); with a deferred transaction two subscribers of one
// group could read the same batch.
type SchemaAdapter struct {
	// BatchSize is the number of messages one subscriber transaction reads.
	// A crash mid-batch redelivers the whole batch, and the transaction
	// (with SQLite's write lock) is held until the batch is handled, so
	// keep it small. Zero means DefaultBatchSize.
	BatchSize int
}

var _ wsql.SchemaAdapter = SchemaAdapter{}

// MessagesTable returns the quoted name of the topic's messages table.
// Topic names are validated by watermill-sql ([A-Za-z0-9-$:._]) before they
// reach the adapter, so quoting them with double quotes is safe.
func (s SchemaAdapter) MessagesTable(topic string) string {
	return `"watermill_` + topic + `"`
}

func (s SchemaAdapter) batchSize() int {
	if s.BatchSize <= 0 {
		return DefaultBatchSize
	}
	return s.BatchSize
}

// SchemaInitializingQueries creates the topic's messages table.
// created_at is in Unix milliseconds, set by Go.
func (s SchemaAdapter) SchemaInitializingQueries(topic string) []wsql.Query {
	return []wsql.Query{{Query: `CREATE TABLE IF NOT EXISTS ` + s.MessagesTable(topic) + ` (
		"offset"   INTEGER PRIMARY KEY AUTOINCREMENT,
		uuid       TEXT    NOT NULL,
		payload    BLOB,
		metadata   TEXT,
		created_at INTEGER NOT NULL
	)`}}
}

// InsertQuery inserts msgs in one statement, in order. It rejects an empty
// slice and more than 8000 messages (SQLite's bound-parameter limit).
func (s SchemaAdapter) InsertQuery(topic string, msgs message.Messages) (wsql.Query, error) {
	if len(msgs) == 0 {
		return wsql.Query{}, errors.New("no messages to insert")
	}
	if len(msgs) > maxInsertMessages {
		return wsql.Query{}, fmt.Errorf("%d messages in one insert, at most %d", len(msgs), maxInsertMessages)
	}
	now := time.Now().UnixMilli()
	args := make([]any, 0, 4*len(msgs))
	for _, msg := range msgs {
		metadata, err := json.Marshal(msg.Metadata)
		if err != nil {
			return wsql.Query{}, fmt.Errorf("marshal metadata of message %s: %w", msg.UUID, err)
		}
		args = append(args, msg.UUID, []byte(msg.Payload), string(metadata), now)
	}
	q := `INSERT INTO ` + s.MessagesTable(topic) + ` (uuid, payload, metadata, created_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?,?,?,?),", len(msgs)), ",")
	return wsql.Query{Query: q, Args: args}, nil
}

// SelectQuery reads the next batch after the group's acked offset.
func (s SchemaAdapter) SelectQuery(topic string, consumerGroup string, offsetsAdapter wsql.OffsetsAdapter) wsql.Query {
	next := offsetsAdapter.NextOffsetQuery(topic, consumerGroup)
	q := `SELECT "offset", uuid, payload, metadata FROM ` + s.MessagesTable(topic) +
		` WHERE "offset" > (` + next.Query + `) ORDER BY "offset" ASC LIMIT ` + fmt.Sprint(s.batchSize())
	return wsql.Query{Query: q, Args: next.Args}
}

// UnmarshalMessage turns a row of SelectQuery into a message.
func (s SchemaAdapter) UnmarshalMessage(row wsql.Scanner) (wsql.Row, error) {
	var r wsql.Row
	if err := row.Scan(&r.Offset, &r.UUID, &r.Payload, &r.Metadata); err != nil {
		return wsql.Row{}, fmt.Errorf("scan message row: %w", err)
	}
	msg := message.NewMessage(string(r.UUID), r.Payload)
	if len(r.Metadata) > 0 {
		if err := json.Unmarshal(r.Metadata, &msg.Metadata); err != nil {
			return wsql.Row{}, fmt.Errorf("unmarshal metadata of message %s: %w", msg.UUID, err)
		}
	}
	r.Msg = msg
	return r, nil
}

// SubscribeIsolationLevel is serializable: every SQLite transaction is, and
// mattn/go-sqlite3 accepts (and ignores) any level.
func (s SchemaAdapter) SubscribeIsolationLevel() stdsql.IsolationLevel {
	return stdsql.LevelSerializable
}

// OffsetsAdapter is a watermill-sql OffsetsAdapter for SQLite: one table per
// topic, "watermill_offsets_<topic>", with one row per consumer group holding
// the last acked offset.
type OffsetsAdapter struct{}

var _ wsql.OffsetsAdapter = OffsetsAdapter{}

// MessagesOffsetsTable returns the quoted name of the topic's offsets table.
func (a OffsetsAdapter) MessagesOffsetsTable(topic string) string {
	return `"watermill_offsets_` + topic + `"`
}

// SchemaInitializingQueries creates the topic's offsets table.
func (a OffsetsAdapter) SchemaInitializingQueries(topic string) []wsql.Query {
	return []wsql.Query{{Query: `CREATE TABLE IF NOT EXISTS ` + a.MessagesOffsetsTable(topic) + ` (
		consumer_group  TEXT    NOT NULL PRIMARY KEY,
		offset_acked    INTEGER NOT NULL DEFAULT 0,
		offset_consumed INTEGER NOT NULL DEFAULT 0
	)`}}
}

// AckMessageQuery moves the group's acked offset forward to row.Offset; it
// never moves it back.
func (a OffsetsAdapter) AckMessageQuery(topic string, row wsql.Row, consumerGroup string) wsql.Query {
	t := a.MessagesOffsetsTable(topic)
	return wsql.Query{
		Query: `INSERT INTO ` + t + ` (consumer_group, offset_acked, offset_consumed) VALUES (?, ?, ?)
			ON CONFLICT (consumer_group) DO UPDATE SET
				offset_acked = excluded.offset_acked,
				offset_consumed = excluded.offset_consumed
			WHERE excluded.offset_acked > ` + t + `.offset_acked`,
		Args: []any{consumerGroup, row.Offset, row.Offset},
	}
}

// ConsumedMessageQuery is empty: MySQL needs it to make competing consumers
// collide, but SQLite serialises the subscriber transactions of one file
// on its write lock, so a second consumer simply waits and then reads the
// new offset.
func (a OffsetsAdapter) ConsumedMessageQuery(topic string, row wsql.Row, consumerGroup string, consumerULID []byte) wsql.Query {
	return wsql.Query{}
}

// NextOffsetQuery returns the group's acked offset, 0 before its first ack.
func (a OffsetsAdapter) NextOffsetQuery(topic, consumerGroup string) wsql.Query {
	return wsql.Query{
		Query: `SELECT COALESCE((SELECT offset_acked FROM ` + a.MessagesOffsetsTable(topic) +
			` WHERE consumer_group = ?), 0)`,
		Args: []any{consumerGroup},
	}
}

// BeforeSubscribingQueries is empty: a group without a row starts at offset 0.
func (a OffsetsAdapter) BeforeSubscribingQueries(topic string, consumerGroup string) []wsql.Query {
	return nil
}
