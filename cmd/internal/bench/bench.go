// Package bench is `invroute bench`: the figures of the README's
// performance section, measured side by side in one run.
package bench

import (
	"context"
	"errors"
	"io"
)

// Main runs the benchmark.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("bench: not implemented yet")
}
