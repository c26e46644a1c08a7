package schemas

import (
	"math"
	"testing"
)

func TestSatAdd(t *testing.T) {
	for _, tc := range [][3]int64{
		{1, 2, 3},
		{math.MaxInt64, 1, math.MaxInt64},
		{math.MaxInt64 - 1, math.MaxInt64, math.MaxInt64},
		{math.MinInt64, -1, math.MinInt64},
		{-5, -math.MaxInt64, math.MinInt64},
		{math.MaxInt64, math.MinInt64, -1},
		{-3, 3, 0},
	} {
		if got := SatAdd(tc[0], tc[1]); got != tc[2] {
			t.Errorf("SatAdd(%d, %d) = %d, want %d", tc[0], tc[1], got, tc[2])
		}
	}
}
