package schemas

import (
	"errors"
	"fmt"
)

// Sentinel errors. Decode and DecodeInput return them inside a *DecodeError,
// Append and Encode inside an *EncodeError; test for them with errors.Is.
var (
	// ErrTruncated means the bytes end before the record does, or a
	// Confluent-framed record is shorter than its 5-byte header.
	ErrTruncated = errors.New("schemas: truncated input")

	// ErrTrailingBytes means bytes follow a complete record.
	ErrTrailingBytes = errors.New("schemas: trailing bytes after record")

	// ErrMalformed means the bytes are not a valid encoding of the schema: a
	// negative length, a varint longer than needed or over 64 bits, an int
	// over 32 bits, a boolean byte other than 0 or 1, a union branch out of
	// range, a string that is not UTF-8, a block size that does not match
	// its items, or a map key that appears twice. Encode reports it for
	// strings that are not UTF-8.
	ErrMalformed = errors.New("schemas: malformed Avro")

	// ErrUnknownSymbol means an enum index is out of range (decoding) or an
	// enum field holds a value that is not one of its symbols (encoding; the
	// zero value "" never is).
	ErrUnknownSymbol = errors.New("schemas: unknown enum symbol")

	// ErrTooLarge means a record exceeds MaxRecordBytes, a string or bytes
	// value exceeds MaxStringBytes, or an array or map exceeds MaxItems.
	ErrTooLarge = errors.New("schemas: too large")

	// ErrSchemaID means a Confluent-framed record names a schema id that is
	// not accepted for the topic. It is always wrapped in a *SchemaIDError.
	ErrSchemaID = errors.New("schemas: schema id not accepted")
)

// DecodeError is the error of a failed Decode or DecodeInput: the bytes are
// not a record of Schema. Errors.Is(err, ErrTruncated) and the other
// sentinels see through it.
type DecodeError struct {
	// Schema is the full name of the record type, like
	// "io.invroute.StockMovement".
	Schema string
	// Field is the path of the field where decoding failed, like
	// "nodes[2].node_id", or empty if the failure is not in one field.
	Field string
	// Err is the cause, wrapping one of the sentinels (or a *SchemaIDError).
	Err error
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "decoding " + e.Schema + ": " + e.Err.Error()
	}
	return "decoding " + e.Schema + " field " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError is the error of a failed Append or Encode: the value cannot be
// written as a record of Schema that Decode would accept.
type EncodeError struct {
	// Schema is the full name of the record type.
	Schema string
	// Field is the path of the offending field, or empty if unknown.
	Field string
	// Err is the cause, wrapping one of the sentinels where one applies.
	Err error
}

func (e *EncodeError) Error() string {
	if e.Field == "" {
		return "encoding " + e.Schema + ": " + e.Err.Error()
	}
	return "encoding " + e.Schema + " field " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *EncodeError) Unwrap() error { return e.Err }

// SchemaIDError is the cause of a DecodeInput failure on a record in
// Confluent wire format whose schema id is not in the accepted SchemaIDs. It
// unwraps to ErrSchemaID.
type SchemaIDError struct {
	// Schema is the full name of the record type the topic carries.
	Schema string
	// ID is the schema id found in the record's header.
	ID int32
	// Accepted is the set of ids that were accepted; empty means Confluent
	// framing is not configured at all.
	Accepted SchemaIDs
}

func (e *SchemaIDError) Error() string {
	if len(e.Accepted) == 0 {
		return fmt.Sprintf("%s: record is in Confluent wire format with schema id %d, "+
			"but no schema ids are accepted for %s; list the registry ids whose schema is %s "+
			"(same fields, same order) in the topic's accepted schema ids",
			ErrSchemaID, e.ID, e.Schema, e.Schema)
	}
	return fmt.Sprintf("%s: schema id %d is not one of %s accepted for %s", ErrSchemaID, e.ID, e.Accepted, e.Schema)
}

// Unwrap returns ErrSchemaID.
func (e *SchemaIDError) Unwrap() error { return ErrSchemaID }
