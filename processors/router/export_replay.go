package router

import "github.com/invroute/invroute/schemas"

// OrderValue is the value of an order's lines as the router checks it
// against its channel's max_order_value_cents: the sum of qty x unit
// price, saturated at math.MaxInt64. For `invroute replay`, which must
// hold the orders the router holds.
func OrderValue(lines []schemas.OrderLine) int64 { return orderValue(lines) }
