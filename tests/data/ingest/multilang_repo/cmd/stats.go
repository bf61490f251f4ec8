package stats

import (
	"errors"
	"sort"
)

// Mean returns the arithmetic mean of xs, or an error when xs is empty.
func Mean(xs []float64) (float64, error) {
	if len(xs) == 0 {
		return 0, errors.New("stats: empty input")
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs)), nil
}

// Median returns the middle value of xs without modifying it.
func Median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

type Counter struct{ counts map[string]int }

// Add increments the count for key and returns the new count.
func (c *Counter) Add(key string) int {
	if c.counts == nil {
		c.counts = make(map[string]int)
	}
	c.counts[key]++
	return c.counts[key]
}
