package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/retry"
)

// ReplayDeadLetter puts dead letter id back on its original topic, for its
// consumer group only, with the attempt count reset and its trace context
// kept, and removes it from the dead-letter store. The message is stamped
// as a replay of the dead letter (backend.MetadataReplayedFrom and
// MetadataReplayedAt, with its backend.MetadataDeadLetterReason kept): the
// tracing middleware records that on its consumer span.
//
// The message keeps its UUID, so groups that use an inbox and had already
// handled it ignore it; other groups never see it (it carries
// backend.MetadataReplayForGroup). If the process dies between the publish
// and the delete, the dead letter stays and a second replay publishes it
// again; the inbox makes that harmless. If the replayed message fails for
// good before the dead letter is removed (a consumer can be that quick),
// its new dead-lettering refreshed the entry, and the entry stays.
func ReplayDeadLetter(ctx context.Context, b backend.Backend, id int64) error {
	dl, err := b.DeadLetters().Get(ctx, id)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if err := b.Publisher().Publish(dl.Topic, replayMessage(dl)); err != nil {
		return fmt.Errorf("replay dead letter %d to %s: %w", id, dl.Topic, err)
	}
	if _, err := b.DeadLetters().DeleteIfUnchanged(ctx, id, dl.DeadAt); err != nil {
		return fmt.Errorf("replay dead letter %d: published, but not removed: %w", id, err)
	}
	return nil
}

// MetadataOriginalUUID is set on the replay of a dead letter whose UUID no
// backend takes any longer (stored before backend.ValidateUUID applied to
// every backend: empty, or longer than 36 characters): the replay gets a
// new UUID, and this key holds the old one.
const MetadataOriginalUUID = "original_message_uuid"

// replayMessage rebuilds the message a dead letter holds, ready to publish
// for its group alone. dl must come from Get: a List result holds only the
// start of its payload.
//
// The message is stamped as a replay of dl (backend.MetadataReplayedFrom
// and MetadataReplayedAt, replacing the stamp of an earlier replay) and
// keeps dl's backend.MetadataDeadLetterReason, so that its trace shows a
// replay, of which dead letter and why that one had failed.
//
// A UUID that cannot be published is replaced (MetadataOriginalUUID): the
// inbox of the dead letter's group never recorded that message as handled
// (it failed there), and no other group receives the replay, so no
// handling is repeated for it; refusing it instead would stop a replay of
// all at that entry for good.
func replayMessage(dl backend.DeadLetter) *message.Message {
	uuid := dl.MessageUUID
	if backend.ValidateUUID(uuid) != nil {
		uuid = NewMessageID()
	}
	msg := message.NewMessage(uuid, dl.Payload)
	for k, v := range dl.Metadata {
		if !retry.IsDeliveryKey(k) {
			msg.Metadata.Set(k, v)
		}
	}
	msg.Metadata.Set(backend.MetadataReplayForGroup, dl.ConsumerGroup)
	msg.Metadata.Set(backend.MetadataReplayID, watermill.NewUUID())
	msg.Metadata.Set(backend.MetadataReplayedFrom, strconv.FormatInt(dl.ID, 10))
	msg.Metadata.Set(backend.MetadataReplayedAt, time.Now().UTC().Format(time.RFC3339Nano))
	if uuid != dl.MessageUUID {
		msg.Metadata.Set(MetadataOriginalUUID, dl.MessageUUID)
	}
	return msg
}

// ReplayDeadLetters replays every dead letter matching f that exists when
// it starts (Limit ignored) and reports how many it replayed. It stops at
// the first failure.
//
// It notes the highest matching ID first, then pages through the entries in
// ID order and replays each page before reading the next, so that a replay
// cut short has made progress. A replayed message that fails again while
// the replay runs is dead-lettered again: under its old ID (already passed)
// or under a new, higher one (beyond the noted one). Either way it is left
// for the next replay, instead of being replayed in a loop that never ends
// while consumers keep failing it. (IDs, not DeadAt times, draw the line:
// the clocks of the hosts that dead-letter may differ from this one's.)
func ReplayDeadLetters(ctx context.Context, b backend.Backend, f backend.DeadLetterFilter) (int, error) {
	newest := f
	newest.Limit, newest.AfterID, newest.Newest = 1, 0, true
	last, err := b.DeadLetters().List(ctx, newest)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	if len(last) == 0 {
		return 0, nil
	}
	maxID := last[0].ID
	f.Limit, f.AfterID, f.Newest = 100, 0, false
	replayed := 0
	for {
		page, err := b.DeadLetters().List(ctx, f)
		if err != nil {
			return replayed, fmt.Errorf("replay: %w", err)
		}
		for _, dl := range page {
			if dl.ID > maxID {
				return replayed, nil
			}
			if err := ReplayDeadLetter(ctx, b, dl.ID); err != nil {
				if errors.Is(err, backend.ErrNotFound) {
					continue // replayed or purged concurrently
				}
				return replayed, err
			}
			replayed++
		}
		if len(page) == 0 {
			return replayed, nil
		}
		f.AfterID = page[len(page)-1].ID
	}
}
