package queue

import "github.com/google/uuid"

// NewMessageID returns the id for a new message: a UUIDv7, whose leading
// bits are the time in milliseconds (and, within one process, a counter),
// so ids made later sort later.
//
// Why not a random UUIDv4 (watermill.NewUUID): every consumer records the
// ids it has handled in its inbox, whose primary key is (consumer_group,
// message_id). Random ids land on a random leaf of that index, so each
// message in a group-committed batch dirtied a page of its own and SQLite
// wrote each such page to the WAL again; time-ordered ids append to the
// index's last leaf, which the batch shares. The ids of a process sort in
// the order it made them; across processes they are ordered only as far as
// their clocks agree, which is all locality needs (nothing relies on the
// order of ids).
func NewMessageID() string {
	return uuid.Must(uuid.NewV7()).String()
}
