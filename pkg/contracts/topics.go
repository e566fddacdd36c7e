package contracts

// Topic names on the shared queue (docs/design.md §3). Commands are consumed by the
// service that owns the topic's prefix; events are published by it.
const (
	TopicInventoryCommands = "inventory.commands"
	TopicInventoryEvents   = "inventory.events"
	TopicPaymentCommands   = "payment.commands"
	TopicPaymentEvents     = "payment.events"
	TopicShippingCommands  = "shipping.commands"
	TopicShippingEvents    = "shipping.events"
	// TopicOrderEvents carries the order service's public events.
	TopicOrderEvents = "order.events"
)

// Metadata keys this package reads and writes. The trace context
// (traceparent, tracestate) and the delivery attempt are owned by the queue
// module and are not touched here.
const (
	// MetadataMessageID names the Watermill message UUID when it is copied into
	// metadata (for example in dead-letter records). Encode does not set it:
	// the publisher creates the UUID with message.NewMessage.
	MetadataMessageID = "message_id"
	// MetadataCorrelationID is the order id. Encode sets it from the message;
	// Decode rejects a message whose correlation id disagrees with its payload.
	MetadataCorrelationID = "correlation_id"
	// MetadataCausationID is the message_id of the message whose handling
	// produced this one. The producer sets it; Encode cannot know it.
	MetadataCausationID = "causation_id"
	// MetadataType is the message type, e.g. "inventory.ReserveStock"; Decode
	// dispatches on it.
	MetadataType = "type"
	// MetadataSchemaVersion is the payload schema version as a decimal integer.
	MetadataSchemaVersion = "schema_version"
)

// SchemaVersion is the payload schema version Encode writes. Decode accepts
// every version listed in its registry (today only 1).
const SchemaVersion = 1
