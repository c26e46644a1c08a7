package screen

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/invroute/invroute/schemas"
)

type memStore map[string]*schemas.CustomerHistory

func (m memStore) Get(c string) (*schemas.CustomerHistory, error) { return m[c], nil }
func (m memStore) Put(h *schemas.CustomerHistory)                 { m[h.CustomerID] = h }

// TestScreen runs testdata scripts. Commands:
//
//	check order=.. customer=.. at=MS [max=N] [window=MS] [key=..]
//	history customer=..
func TestScreen(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if strings.Contains(filepath.ToSlash(path), "testdata/fuzz/") {
			t.Skip("a fuzz seed corpus, not a script")
		}
		st := memStore{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(k, def string) string {
				for _, a := range d.CmdArgs {
					if a.Key == k {
						return strings.Join(a.Vals, ",")
					}
				}
				return def
			}
			num := func(k, def string) int64 {
				v, err := strconv.ParseInt(arg(k, def), 10, 64)
				if err != nil {
					t.Fatalf("%s: bad %s", d.Pos, k)
				}
				return v
			}
			switch d.Cmd {
			case "check":
				c := &schemas.CustomerCheck{OrderID: arg("order", ""), CustomerID: arg("customer", ""), PlacedAt: num("at", "0"),
					MaxOrders: int32(num("max", "3")), WindowMs: num("window", "3600000")}
				v, err := Check(st, []byte(arg("key", c.CustomerID)), c)
				if err != nil {
					return "error: " + err.Error()
				}
				return strings.TrimSpace(fmt.Sprintf("hold=%t others=%d %s", v.Hold, v.OrdersInWindow, v.Reason))
			case "history":
				h := st[arg("customer", "")]
				if h == nil {
					return "none"
				}
				var b strings.Builder
				for _, o := range h.Orders {
					fmt.Fprintf(&b, "%s@%d ", o.OrderID, o.PlacedAt)
				}
				return strings.TrimSpace(b.String())
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
	})
}
