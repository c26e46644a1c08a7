package schemas_test

import (
	"errors"
	"fmt"

	"github.com/invroute/invroute/schemas"
)

func Example() {
	order := "o-7"
	in := schemas.StockMovement{
		MovementID: "m-1", SKU: "SKU-1", NodeID: "WH-1", Type: schemas.Shipment, Qty: 2,
		OrderID: &order, OccurredAt: 1767225600000,
	}
	b, err := schemas.StockMovements.Encode(&in)
	if err != nil {
		panic(err)
	}

	var out schemas.StockMovement
	if err := schemas.StockMovements.Decode(b, &out); err != nil {
		panic(err)
	}
	fmt.Println(out.SKU, out.Type, out.Qty, *out.OrderID)

	err = schemas.StockMovements.Decode(b[:len(b)-1], &out)
	fmt.Println(errors.Is(err, schemas.ErrTruncated))
	// Output:
	// SKU-1 SHIPMENT 2 o-7
	// true
}

func ExampleCodec_DecodeInput() {
	in := schemas.Channel{ChannelID: "pos", Nodes: []string{"ST-1"}}
	plain, _ := schemas.Channels.Encode(&in)
	framed := schemas.Frame(nil, 42, plain) // as a Confluent serializer writes it

	accepted := schemas.SchemaIDs{42} // e.g. from schemas.ParseSchemaIDs(flagValue)
	var out schemas.Channel
	fmt.Println(schemas.Channels.DecodeInput(plain, &out, accepted), out.Nodes)
	fmt.Println(schemas.Channels.DecodeInput(framed, &out, accepted), out.Nodes)

	err := schemas.Channels.DecodeInput(framed, &out, schemas.SchemaIDs{7})
	var idErr *schemas.SchemaIDError
	fmt.Println(errors.As(err, &idErr), idErr.ID)
	// Output:
	// <nil> [ST-1]
	// <nil> [ST-1]
	// true 42
}
