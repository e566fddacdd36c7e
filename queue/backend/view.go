package backend

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// DeadLetterView is a dead letter as JSON shows it, in the admin API's
// GET /dlq (pkg/admin) and in queuectl --json alike, so that a script can
// read either. The payload is text under "payload" when it is valid UTF-8;
// otherwise "payload" is left out and "payload_base64" holds it in base64.
type DeadLetterView struct {
	ID            int64   `json:"id"`
	MessageUUID   string  `json:"message_uuid"`
	Topic         string  `json:"topic"`
	ConsumerGroup string  `json:"consumer_group"`
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 []byte  `json:"payload_base64,omitempty"`
	// PayloadSize is the whole payload's size in bytes; PayloadCut says
	// that the payload above is only its start (a listing holds the first
	// ListPayloadPreview bytes; one dead letter, the whole payload).
	PayloadSize   int               `json:"payload_size"`
	PayloadCut    bool              `json:"payload_cut,omitempty"`
	Metadata      map[string]string `json:"metadata"`
	Attempts      int               `json:"attempts"`
	LastError     string            `json:"last_error"`
	FirstFailedAt time.Time         `json:"first_failed_at"`
	LastFailedAt  time.Time         `json:"last_failed_at"`
	DeadAt        time.Time         `json:"dead_at"`
}

// View returns dl as JSON shows it; metadata is never null.
func (dl DeadLetter) View() DeadLetterView {
	v := DeadLetterView{
		ID: dl.ID, MessageUUID: dl.MessageUUID, Topic: dl.Topic, ConsumerGroup: dl.ConsumerGroup,
		Metadata: dl.Metadata, Attempts: dl.Attempts, LastError: dl.LastError,
		FirstFailedAt: dl.FirstFailedAt, LastFailedAt: dl.LastFailedAt, DeadAt: dl.DeadAt,
	}
	v.Payload, v.PayloadBase64 = ViewPayload(dl.Payload)
	v.PayloadSize, v.PayloadCut = max(dl.PayloadSize, len(dl.Payload)), dl.PayloadCut()
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	return v
}

// ViewPayload returns a payload as JSON shows it: text when it is valid
// UTF-8, else the bytes (which encoding/json writes in base64).
func ViewPayload(p []byte) (text *string, raw []byte) {
	if utf8.Valid(p) {
		s := string(p)
		return &s, nil
	}
	return nil, p
}

// CountDeadLetters says n dead letters in words, as queuectl and the
// console report a replay or a purge: "1 dead letter", "3 dead letters".
func CountDeadLetters(n int) string {
	if n == 1 {
		return "1 dead letter"
	}
	return fmt.Sprintf("%d dead letters", n)
}
