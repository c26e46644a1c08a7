package schemas

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/linkedin/goavro/v2"
)

// anyCodec lets tests loop over codecs of different types.
type anyCodec interface {
	Name() string
	Schema() string
	hamba() avro.Schema
	goavro() *goavro.Codec
	program() *node
	goType() reflect.Type
	samples() []any // pointers to fresh copies
	encode(v any) ([]byte, error)
	decode(b []byte) (any, error)
	decodeInput(b []byte, ids SchemaIDs) (any, error)
}

type adapter[T any] struct {
	c  *Codec[T]
	vs []T
}

func (a adapter[T]) Name() string                 { return a.c.Name() }
func (a adapter[T]) Schema() string               { return a.c.Schema() }
func (a adapter[T]) hamba() avro.Schema           { return a.c.schema }
func (a adapter[T]) goavro() *goavro.Codec        { return a.c.authority }
func (a adapter[T]) program() *node               { return a.c.prog }
func (a adapter[T]) goType() reflect.Type         { return reflect.TypeFor[T]() }
func (a adapter[T]) encode(v any) ([]byte, error) { return a.c.Encode(v.(*T)) }

func (a adapter[T]) samples() []any {
	out := make([]any, len(a.vs))
	for i := range a.vs {
		v := a.vs[i]
		out[i] = &v
	}
	return out
}

func (a adapter[T]) decode(b []byte) (any, error) {
	v := new(T)
	return v, a.c.Decode(b, v)
}

func (a adapter[T]) decodeInput(b []byte, ids SchemaIDs) (any, error) {
	v := new(T)
	return v, a.c.DecodeInput(b, v, ids)
}

// allCodecs lists every exported codec with its samples.
func allCodecs() []anyCodec {
	return []anyCodec{
		adapter[StockMovement]{StockMovements, stockMovementSamples},
		adapter[Node]{Nodes, nodeSamples},
		adapter[Channel]{Channels, channelSamples},
		adapter[AtsUpdate]{AtsUpdates, atsUpdateSamples},
		adapter[SKUState]{SKUStates, skuStateSamples},
		adapter[OrderEvent]{OrderEvents, orderEventSamples},
		adapter[FulfillmentFeedback]{FulfillmentFeedbacks, fulfillmentFeedbackSamples},
		adapter[ReservationCommand]{ReservationCommands, reservationCommandSamples},
		adapter[ReservationResult]{ReservationResults, reservationResultSamples},
		adapter[Reservation]{Reservations, reservationSamples},
		adapter[RoutingDecision]{RoutingDecisions, routingDecisionSamples},
		adapter[FulfillmentRequest]{FulfillmentRequests, fulfillmentRequestSamples},
		adapter[OrderStatus]{OrderStatuses, orderStatusSamples},
		adapter[RouterOrder]{RouterOrders, routerOrderSamples},
		adapter[NodeLoad]{NodeLoads, nodeLoadSamples},
		adapter[CustomerCheck]{CustomerChecks, []CustomerCheck{{OrderID: "o-1", CustomerID: "c-1", ChannelID: "web", PlacedAt: t0, MaxOrders: 5, WindowMs: 3_600_000}}},
		adapter[CustomerVerdict]{CustomerVerdicts, []CustomerVerdict{{OrderID: "o-1", CustomerID: "c-1", Hold: true, OrdersInWindow: 5, Reason: "5 orders in 1h"}}},
		adapter[CustomerHistory]{CustomerHistories, []CustomerHistory{{CustomerID: "c-1", Orders: []CustomerOrder{{OrderID: "o-1", PlacedAt: t0}}}, {CustomerID: "c-2", Orders: []CustomerOrder{}}}},
	}
}

// forEachSample runs f on every sample of every codec, as a subtest.
func forEachSample(t *testing.T, f func(t *testing.T, c anyCodec, v any)) {
	t.Helper()
	for _, c := range allCodecs() {
		for i, v := range c.samples() {
			t.Run(fmt.Sprintf("%s/%d", strings.TrimPrefix(c.Name(), "io.invroute."), i), func(t *testing.T) {
				f(t, c, v)
			})
		}
	}
}

// toNative converts a Go value of a record type to goavro's native form of
// the same datum, walking the schema and the avro struct tags. It shares no
// code with the codecs, so goavro and hamba are checked against each other
// and not against themselves.
func toNative(s avro.Schema, v reflect.Value) any {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		m := map[string]any{}
		for _, f := range s.Fields() {
			m[f.Name()] = toNative(f.Type(), fieldByTag(v, f.Name()))
		}
		return m
	case *avro.EnumSchema:
		return v.String()
	case *avro.ArraySchema:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = toNative(s.Items(), v.Index(i))
		}
		return out
	case *avro.MapSchema:
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			out[it.Key().String()] = toNative(s.Values(), it.Value())
		}
		return out
	case *avro.UnionSchema:
		if v.IsNil() {
			return nil
		}
		branch := s.Types()[1]
		name := string(branch.Type())
		if ns, ok := branch.(avro.NamedSchema); ok {
			name = ns.FullName()
		}
		return goavro.Union(name, toNative(branch, v.Elem()))
	case *avro.PrimitiveSchema:
		if s.Logical() != nil && s.Logical().Type() == avro.TimestampMillis {
			return time.UnixMilli(v.Int()).UTC()
		}
		switch s.Type() {
		case avro.String:
			return v.String()
		case avro.Int:
			return int32(v.Int())
		case avro.Long:
			return v.Int()
		case avro.Double:
			return v.Float()
		case avro.Boolean:
			return v.Bool()
		}
	}
	panic(fmt.Sprintf("toNative: unsupported schema %s", s.Type()))
}

// fieldByTag returns the field of struct v whose avro tag is name.
func fieldByTag(v reflect.Value, name string) reflect.Value {
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("avro") == name {
			return v.Field(i)
		}
	}
	panic("no field with avro tag " + name + " in " + v.Type().String())
}

// normalize replaces nil slices and maps in *v by empty ones, as Decode
// returns them, so that reflect.DeepEqual compares what matters.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			normalize(v.Field(i))
		}
	case reflect.Slice:
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
		for i := range v.Len() {
			normalize(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
	}
}

// equalValues is reflect.DeepEqual after normalize, with NaN equal to NaN.
func equalValues(a, b any) bool {
	normalize(reflect.ValueOf(a))
	normalize(reflect.ValueOf(b))
	return deepEqualNaN(reflect.ValueOf(a), reflect.ValueOf(b))
}

func deepEqualNaN(a, b reflect.Value) bool {
	if a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return deepEqualNaN(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !deepEqualNaN(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !deepEqualNaN(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for it := a.MapRange(); it.Next(); {
			bv := b.MapIndex(it.Key())
			if !bv.IsValid() || !deepEqualNaN(it.Value(), bv) {
				return false
			}
		}
		return true
	default:
		return a.Interface() == b.Interface()
	}
}
