package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/retry"
)

// ReplayDeadLetter puts dead letter id back on its original topic, for its
// consumer group only, with the attempt count reset and its trace context
// kept, and removes it from the dead-letter store.
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
	if err := b.Publisher().Publish(dl.Topic, ReplayMessage(dl)); err != nil {
		return fmt.Errorf("replay dead letter %d to %s: %w", id, dl.Topic, err)
	}
	if _, err := b.DeadLetters().DeleteIfUnchanged(ctx, id, dl.DeadAt); err != nil {
		return fmt.Errorf("replay dead letter %d: published, but not removed: %w", id, err)
	}
	return nil
}

// ReplayMessage rebuilds the message a dead letter holds, ready to publish
// for its group alone.
func ReplayMessage(dl backend.DeadLetter) *message.Message {
	msg := message.NewMessage(dl.MessageUUID, dl.Payload)
	for k, v := range dl.Metadata {
		if !retry.IsDeliveryKey(k) && k != retry.MetadataDeadLetterReason {
			msg.Metadata.Set(k, v)
		}
	}
	msg.Metadata.Set(backend.MetadataReplayForGroup, dl.ConsumerGroup)
	return msg
}

// ReplayDeadLetters replays every dead letter matching f (Limit ignored)
// and reports how many it replayed. It stops at the first failure.
func ReplayDeadLetters(ctx context.Context, b backend.Backend, f backend.DeadLetterFilter) (int, error) {
	replayed := 0
	for {
		f.Limit = 100
		batch, err := b.DeadLetters().List(ctx, f)
		if err != nil {
			return replayed, fmt.Errorf("replay: %w", err)
		}
		if len(batch) == 0 {
			return replayed, nil
		}
		for _, dl := range batch {
			if err := ReplayDeadLetter(ctx, b, dl.ID); err != nil {
				if errors.Is(err, backend.ErrNotFound) {
					continue // replayed or purged concurrently
				}
				return replayed, err
			}
			replayed++
		}
	}
}
