// Package screen is the customer screen: partitioned by customer id, it
// remembers each customer's recent orders and tells the router whether a
// new order makes too many within a window (a fraud and abuse rule that
// the router, partitioned by order id, cannot check itself).
//
// Like every processor here it is a deterministic function of its state
// and input: time is the orders' placed_at.
package screen

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/invroute/invroute/schemas"
)

// Store is the screen's state of its partition.
type Store interface {
	Get(customer string) (*schemas.CustomerHistory, error) // nil if none; do not modify
	Put(h *schemas.CustomerHistory)
}

// InvalidError marks input that can never be applied (dead letter).
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "screen: invalid input: " + e.Reason }

// IsInvalid reports whether err marks bad input.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// MaxOrdersLimit bounds max_orders, and with it a customer's history.
const MaxOrdersLimit = 10_000

// MaxWindowMs bounds window_ms: the longest time.Duration, in milliseconds
// (the router sends customer_window), so twice it cannot overflow.
const MaxWindowMs = math.MaxInt64 / int64(time.Millisecond)

// Check records the order in its customer's history and says whether the
// customer has MaxOrders or more other orders placed within the window of
// it, before or after: the router is partitioned by order id, so one
// customer's orders reach the screen in any order, and the one that makes
// too many (by arrival) is held. A check seen again (same order id) is not
// counted twice (the router acts on the first verdict of an order only).
// The history keeps the orders placed after two windows before the order
// checked (not before the customer's newest order: one order placed ahead,
// or a check arriving late, must not trim what a late check still counts),
// at most 4 x MaxOrders (and at least 16) of them, the newest.
func Check(st Store, key []byte, c *schemas.CustomerCheck) (*schemas.CustomerVerdict, error) {
	switch {
	case string(key) != c.CustomerID || c.CustomerID == "":
		return nil, &InvalidError{fmt.Sprintf("record key %q disagrees with customer_id %q", key, c.CustomerID)}
	case c.OrderID == "":
		return nil, &InvalidError{"empty order_id"}
	case c.MaxOrders < 1 || c.MaxOrders > MaxOrdersLimit || c.WindowMs < 1 || c.WindowMs > MaxWindowMs:
		return nil, &InvalidError{fmt.Sprintf("max_orders %d must be in [1, %d] and window_ms %d in [1, %d]", c.MaxOrders, MaxOrdersLimit, c.WindowMs, MaxWindowMs)}
	}
	cur, err := st.Get(c.CustomerID)
	if err != nil {
		return nil, err
	}
	var orders []schemas.CustomerOrder
	if cur != nil {
		orders = cur.Orders
	}
	dup := slices.ContainsFunc(orders, func(o schemas.CustomerOrder) bool { return o.OrderID == c.OrderID })
	var n int32
	lo, hi := schemas.SatAdd(c.PlacedAt, -c.WindowMs), schemas.SatAdd(c.PlacedAt, c.WindowMs)
	for _, o := range orders {
		if o.OrderID != c.OrderID && o.PlacedAt > lo && o.PlacedAt < hi {
			n++
		}
	}
	v := &schemas.CustomerVerdict{OrderID: c.OrderID, CustomerID: c.CustomerID, OrdersInWindow: n, Hold: n >= c.MaxOrders}
	if v.Hold {
		v.Reason = fmt.Sprintf("customer %s placed %d other orders within %v of this one (limit %d)",
			c.CustomerID, n, time.Duration(c.WindowMs)*time.Millisecond, c.MaxOrders)
	}
	if dup {
		return v, nil
	}
	next := slices.Clone(orders)
	i, _ := slices.BinarySearchFunc(next, c.PlacedAt, func(o schemas.CustomerOrder, t int64) int {
		switch {
		case o.PlacedAt <= t:
			return -1
		}
		return 1
	})
	next = slices.Insert(next, i, schemas.CustomerOrder{OrderID: c.OrderID, PlacedAt: c.PlacedAt})
	cut := schemas.SatAdd(c.PlacedAt, -2*c.WindowMs)
	next = slices.DeleteFunc(next, func(o schemas.CustomerOrder) bool { return o.PlacedAt <= cut })
	if keep := max(16, 4*int(c.MaxOrders)); len(next) > keep {
		next = next[len(next)-keep:]
	}
	st.Put(&schemas.CustomerHistory{CustomerID: c.CustomerID, Orders: next})
	return v, nil
}
