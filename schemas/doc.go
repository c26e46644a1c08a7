// Package schemas holds the Avro schemas of every invroute topic (embedded
// .avsc files) and the typed Go values and codecs that read and write them.
//
// Decoding is strict and never panics: hostile bytes, trailing bytes after a
// complete record, unknown enum symbols and oversized strings or arrays all
// return an error.
//
// # Schemas
//
// Each record type has one .avsc file in avro/, namespace io.invroute, and
// one package-level *Codec: StockMovements, Nodes, Channels, AtsUpdates and
// SKUStates for inventory; OrderEvents, FulfillmentFeedbacks,
// ReservationCommands, ReservationResults, Reservations, RoutingDecisions,
// FulfillmentRequests and OrderStatuses for order routing. goavro is the
// schema authority: every schema must parse with it when the package is
// initialised, and the tests check that hamba, which does the work, writes
// the very bytes goavro writes and reads what goavro reads.
//
// # Codecs
//
// A Codec[T] reads and writes plain Avro (no header) with hamba/avro and
// struct tags, after a strict, allocation-free pass over the bytes (see
// check.go): hamba only ever sees a complete, well-formed record whose
// lengths are all backed by bytes. Input topics may also carry the Confluent
// wire format; Codec.DecodeInput accepts it for the schema ids it is given.
//
// Limits (MaxRecordBytes, MaxStringBytes, MaxItems) bound what one record can
// make the decoder allocate. Encoding checks the same limits, so that what
// invroute writes it can read back.
//
// The codecs decode with the schema they were built with: they do no schema
// resolution. A topic written with another version of a schema must be
// decoded by a codec of that version, even when the newer one only adds
// fields with defaults: the old bytes end early for the new codec. The
// versions still read are in avro/legacy (ChannelsV1 through DecodeChannel,
// RouterOrdersV1 behind the router's format byte).
package schemas
