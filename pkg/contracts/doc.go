// Package contracts holds the versioned message contracts shared by the order,
// inventory, payment and shipping services: topic names, one Go type per
// message, the metadata keys every message carries, and the codec that turns a
// message into a Watermill payload plus metadata and back.
//
// The package depends on the standard library only, so that every module of
// the workspace (services, queue tools, the e2e harness) can import it.
//
// Producing a message:
//
//	payload, meta, err := contracts.Encode(contracts.ReserveStock{OrderID: id, Items: items})
//	msg := message.NewMessage(queue.NewMessageID(), payload) // message_id: a time-ordered UUIDv7
//	for k, v := range meta {
//		msg.Metadata.Set(k, v)
//	}
//	msg.Metadata.Set(contracts.MetadataCausationID, incoming.UUID)
//
// Consuming one:
//
//	m, err := contracts.Decode(msg.Metadata, msg.Payload)
//	if errors.Is(err, contracts.ErrUndecodable) {
//		// permanent: dead-letter it, never retry
//	}
//	switch m := m.(type) {
//	case contracts.StockReserved:
//		...
//	}
package contracts
