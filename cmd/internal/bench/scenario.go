package bench

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/invroute/invroute/schemas"
)

// The routing section's EU scenario: 8 warehouses and 3PLs and 40 stores
// in FR, DE, IT, ES, NL and PL, at the coordinates of real sites and
// cities, a catalogue of Zipf-skewed popularity, skewed stock and orders of
// 1 to 6 lines shipping to points around the cities of those countries.
// Everything comes from one seed: the three strategies of the quality
// section and the broker phases see the same network, stock and orders.

// routeChannel is the one sales channel of the scenario: every node feeds
// it, every country is served, no order value limit (no order is held).
const routeChannel = "bench-web"

// Node shipment costs (cents per shipment, before the distance part):
// stores are the dearest to pick from, 3PLs a little dearer than own DCs.
var routeNetwork = []schemas.Node{
	// DCs and 3PLs, in the order the "first node with stock" baseline
	// tries them: the big central DCs first, as a primary-DC rule would.
	{NodeID: "DC-DE-ERF", Type: schemas.Warehouse, Country: "DE", Lat: 50.9787, Lon: 11.0328, ShipmentCostCents: 390},
	{NodeID: "DC-FR-PAR", Type: schemas.Warehouse, Country: "FR", Lat: 48.8417, Lon: 2.6364, ShipmentCostCents: 410},
	{NodeID: "DC-IT-PCZ", Type: schemas.Warehouse, Country: "IT", Lat: 45.0526, Lon: 9.6930, ShipmentCostCents: 420},
	{NodeID: "DC-ES-MAD", Type: schemas.Warehouse, Country: "ES", Lat: 40.3057, Lon: -3.7329, ShipmentCostCents: 420},
	{NodeID: "DC-PL-POZ", Type: schemas.Warehouse, Country: "PL", Lat: 52.4064, Lon: 16.9252, ShipmentCostCents: 380},
	{NodeID: "3PL-NL-VEN", Type: schemas.ThreePL, Country: "NL", Lat: 51.3704, Lon: 6.1724, ShipmentCostCents: 450},
	{NodeID: "3PL-DE-DTM", Type: schemas.ThreePL, Country: "DE", Lat: 51.5136, Lon: 7.4653, ShipmentCostCents: 460},
	{NodeID: "3PL-FR-LYS", Type: schemas.ThreePL, Country: "FR", Lat: 45.7640, Lon: 4.8357, ShipmentCostCents: 470},
}

// routeStores are the 40 ship-enabled stores, by country: city and
// coordinates.
var routeStores = []struct {
	country, city string
	lat, lon      float64
}{
	{"FR", "PAR", 48.8566, 2.3522}, {"FR", "MRS", 43.2965, 5.3698}, {"FR", "LYS", 45.7640, 4.8357}, {"FR", "TLS", 43.6047, 1.4442},
	{"FR", "NCE", 43.7102, 7.2620}, {"FR", "NTE", 47.2184, -1.5536}, {"FR", "SXB", 48.5734, 7.7521}, {"FR", "BOD", 44.8378, -0.5792},
	{"FR", "LIL", 50.6292, 3.0573},
	{"DE", "BER", 52.5200, 13.4050}, {"DE", "HAM", 53.5511, 9.9937}, {"DE", "MUC", 48.1351, 11.5820}, {"DE", "CGN", 50.9375, 6.9603},
	{"DE", "FRA", 50.1109, 8.6821}, {"DE", "STR", 48.7758, 9.1829}, {"DE", "DUS", 51.2277, 6.7735}, {"DE", "LEJ", 51.3397, 12.3731},
	{"IT", "ROM", 41.9028, 12.4964}, {"IT", "MIL", 45.4642, 9.1900}, {"IT", "NAP", 40.8518, 14.2681}, {"IT", "TRN", 45.0703, 7.6869},
	{"IT", "BLQ", 44.4949, 11.3426}, {"IT", "FLR", 43.7696, 11.2558}, {"IT", "PMO", 38.1157, 13.3615},
	{"ES", "MAD", 40.4168, -3.7038}, {"ES", "BCN", 41.3851, 2.1734}, {"ES", "VLC", 39.4699, -0.3763}, {"ES", "SVQ", 37.3891, -5.9845},
	{"ES", "BIO", 43.2630, -2.9350}, {"ES", "ZAZ", 41.6488, -0.8891},
	{"NL", "AMS", 52.3676, 4.9041}, {"NL", "RTM", 51.9244, 4.4777}, {"NL", "UTC", 52.0907, 5.1214}, {"NL", "EIN", 51.4416, 5.4697},
	{"PL", "WAW", 52.2297, 21.0122}, {"PL", "KRK", 50.0647, 19.9450}, {"PL", "WRO", 51.1079, 17.0385}, {"PL", "GDN", 54.3520, 18.6466},
	{"PL", "POZ", 52.4064, 16.9252}, {"PL", "LCJ", 51.7592, 19.4560},
}

// shipToCities are where orders ship (around), with the share of orders
// of each country: the stores' cities and a few more.
var shipToCountries = []struct {
	country string
	share   float64
	cities  [][2]float64
}{
	{"DE", 0.26, [][2]float64{{52.52, 13.40}, {53.55, 9.99}, {48.14, 11.58}, {50.94, 6.96}, {50.11, 8.68}, {48.78, 9.18}, {51.23, 6.77}, {51.34, 12.37}, {51.05, 13.74}, {53.08, 8.80}, {52.38, 9.73}, {49.45, 11.08}}},
	{"FR", 0.21, [][2]float64{{48.86, 2.35}, {43.30, 5.37}, {45.76, 4.84}, {43.60, 1.44}, {43.71, 7.26}, {47.22, -1.55}, {48.57, 7.75}, {44.84, -0.58}, {50.63, 3.06}, {48.11, -1.68}, {49.26, 4.03}}},
	{"IT", 0.18, [][2]float64{{41.90, 12.50}, {45.46, 9.19}, {40.85, 14.27}, {45.07, 7.69}, {44.49, 11.34}, {43.77, 11.26}, {38.12, 13.36}, {41.12, 16.87}, {45.44, 12.32}}},
	{"ES", 0.15, [][2]float64{{40.42, -3.70}, {41.39, 2.17}, {39.47, -0.38}, {37.39, -5.98}, {43.26, -2.93}, {41.65, -0.89}, {36.72, -4.42}, {43.36, -5.85}}},
	{"PL", 0.12, [][2]float64{{52.23, 21.01}, {50.06, 19.95}, {51.11, 17.04}, {54.35, 18.65}, {52.41, 16.93}, {51.76, 19.46}, {50.26, 19.02}, {53.43, 14.55}}},
	{"NL", 0.08, [][2]float64{{52.37, 4.90}, {51.92, 4.48}, {52.09, 5.12}, {51.44, 5.47}, {53.22, 6.57}, {52.07, 4.30}}},
}

// scenario is the generated EU network, its initial stock and its orders.
type scenario struct {
	nodes []schemas.Node // DCs and 3PLs, then stores: the first baseline's order
	skus  []string
	stock [][]int64 // [node][sku] units at the start
	// orders with distinct SKUs per order (one line per SKU, as carts are).
	orders []scenarioOrder
	lat    []float64 // per node, for distances without a look-up
	lon    []float64
	pop    []float64 // per SKU, summing to 1
}

// scenarioOrder is one generated order: the event and its lines' SKU
// indexes.
type scenarioOrder struct {
	ev   schemas.OrderEvent
	skus []int // per line
}

// scenarioSKUs is the catalogue size of the routing scenario.
const scenarioSKUs = 2000

// newScenario generates the network, stock and n orders from seed.
func newScenario(seed int64, n int) *scenario {
	rnd := rand.New(rand.NewSource(seed))
	sc := &scenario{}
	for _, nd := range routeNetwork {
		nd.Active, nd.ShipEnabled = true, true
		sc.nodes = append(sc.nodes, nd)
	}
	for i, s := range routeStores {
		sc.nodes = append(sc.nodes, schemas.Node{NodeID: fmt.Sprintf("ST-%s-%s", s.country, s.city), Type: schemas.Store,
			Country: s.country, Lat: s.lat, Lon: s.lon, Active: true, ShipEnabled: true, PickupEnabled: true,
			ShipmentCostCents: int32(750 + 25*(i%7))})
	}
	for _, nd := range sc.nodes {
		sc.lat, sc.lon = append(sc.lat, nd.Lat), append(sc.lon, nd.Lon)
	}
	for i := range scenarioSKUs {
		sc.skus = append(sc.skus, fmt.Sprintf("EU-%05d", i))
	}
	sc.pop = zipfWeights(scenarioSKUs, 1.1, 10)
	// Stock for the expected demand of n orders (2.5 lines of 1.25 units
	// on average). Which node carries which SKU does not depend on n.
	sc.stock = scenarioStock(rnd, len(routeNetwork), len(sc.nodes), sc.pop, float64(n)*2.5*1.25)
	og := newOrderGen(rnd, sc.pop)
	for i := range n {
		sc.orders = append(sc.orders, og.next(fmt.Sprintf("Q-%07d", i), sc.skus))
	}
	return sc
}

// zipfWeights returns the popularity of n items, p(k) proportional to
// (v+k)^-s, summing to 1: with s=1.1, v=10 over 2000 SKUs the hottest SKU
// is about 3% of the lines and the top 10% about half of them.
func zipfWeights(n int, s, v float64) []float64 {
	w := make([]float64, n)
	var sum float64
	for k := range w {
		w[k] = math.Pow(v+float64(k), -s)
		sum += w[k]
	}
	for k := range w {
		w[k] /= sum
	}
	return w
}

// scenarioStock spreads stock for about the expected demand (units) so
// that it runs short here and there as orders consume it: each DC or 3PL
// carries a SKU with a probability that grows with its popularity (every
// SKU is carried by at least one), 8% to 53% of its expected demand
// (skewed to the low end); stores carry some of the popular SKUs, a few
// units each.
func scenarioStock(rnd *rand.Rand, dcs, nodes int, pop []float64, units float64) [][]int64 {
	st := make([][]int64, nodes)
	for i := range st {
		st[i] = make([]int64, len(pop))
	}
	for s, p := range pop {
		demand := p * units
		rank := float64(s) / float64(len(pop))
		carry := 0.85 - 0.55*rank // 85% of DCs carry the hottest SKU, 30% the coldest
		carried := false
		for d := range dcs {
			if rnd.Float64() < carry {
				f := 0.08 + 0.45*rnd.Float64()*rnd.Float64()
				st[d][s] = 1 + int64(demand*f)
				carried = true
			}
		}
		if !carried {
			st[rnd.Intn(dcs)][s] = 1 + int64(demand*0.2)
		}
		if s < len(pop)/5 {
			for n := dcs; n < nodes; n++ {
				if rnd.Float64() < 0.35 {
					st[n][s] = 1 + int64(rnd.Intn(3)) + int64(demand*0.004)
				}
			}
		}
	}
	return st
}

// orderGen draws orders: 1 to 6 lines (35% one line, fewer as they grow)
// of distinct SKUs by popularity, 1 unit mostly, a ship-to point within
// about 40 km of a city of a country drawn by its share of orders; 10%
// RUSH, 5% VIP, 70% SHIP_AVAILABLE.
type orderGen struct {
	rnd *rand.Rand
	cum []float64 // cumulative popularity
}

func newOrderGen(rnd *rand.Rand, pop []float64) *orderGen {
	g := &orderGen{rnd: rnd, cum: make([]float64, len(pop))}
	var c float64
	for i, p := range pop {
		c += p
		g.cum[i] = c
	}
	return g
}

var lineCounts = []float64{0.35, 0.25, 0.15, 0.11, 0.08, 0.06} // 1..6 lines

func (g *orderGen) sku() int {
	x := g.rnd.Float64() * g.cum[len(g.cum)-1]
	lo, hi := 0, len(g.cum)-1
	for lo < hi {
		m := (lo + hi) / 2
		if g.cum[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (g *orderGen) next(id string, skus []string) scenarioOrder {
	rnd := g.rnd
	nLines := 1
	for x := rnd.Float64(); nLines < len(lineCounts) && x > lineCounts[nLines-1]; nLines++ {
		x -= lineCounts[nLines-1]
	}
	var o scenarioOrder
	for len(o.skus) < nLines {
		s := g.sku()
		if !containsInt(o.skus, s) {
			o.skus = append(o.skus, s)
		}
	}
	ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventPlaced, ChannelID: routeChannel,
		CustomerID: fmt.Sprintf("C-%06d", rnd.Intn(200000)), CustomerTier: schemas.TierStandard,
		Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip, ShipTo: randomShipTo(rnd),
		Policy: schemas.ShipAvailable, LineIDs: []string{}}
	if rnd.Intn(10) == 0 {
		ev.Priority = schemas.PriorityRush
	}
	if rnd.Intn(20) == 0 {
		ev.CustomerTier = schemas.TierVIP
	}
	if rnd.Intn(10) < 3 {
		ev.Policy = schemas.ShipComplete
	}
	for i, s := range o.skus {
		qty := int64(1)
		if r := rnd.Intn(20); r >= 19 {
			qty = 3
		} else if r >= 16 {
			qty = 2
		}
		ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: fmt.Sprint(i + 1), SKU: skus[s], Qty: qty,
			UnitPriceCents: int64(500 + 100*(s%40))})
	}
	o.ev = ev
	return o
}

// randomShipTo draws a country by its share of orders, then a point
// within about 40 km of one of its cities.
func randomShipTo(rnd *rand.Rand) *schemas.Address {
	x := rnd.Float64()
	c := shipToCountries[len(shipToCountries)-1]
	for _, cc := range shipToCountries {
		if x < cc.share {
			c = cc
			break
		}
		x -= cc.share
	}
	city := c.cities[rnd.Intn(len(c.cities))]
	return &schemas.Address{Country: c.country, PostalCode: "00000",
		Lat: math.Round((city[0]+(rnd.Float64()-0.5)*0.7)*1e4) / 1e4,
		Lon: math.Round((city[1]+(rnd.Float64()-0.5)*1.0)*1e4) / 1e4}
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
