package testkit

import (
	"bytes"
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Buffer is a bytes.Buffer safe for concurrent use: processes and
// goroutines write their output or logs to it while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Bytes returns a copy of what was written so far.
func (s *Buffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// produceAll sends the n records next returns and waits for them; fatal
// gets the first error.
func produceAll(cl *kgo.Client, n int, next func() *kgo.Record, fatal func(...any)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range n {
		wg.Add(1)
		cl.Produce(context.Background(), next(), func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		fatal(first)
	}
}
