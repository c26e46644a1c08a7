package state

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// identityKey holds what the store was built from (see SetIdentity).
var identityKey = []byte("\x00identity")

// Identity returns what SetIdentity bound the store to, or nil if nothing
// (a new store, a wiped one, or one written before identities existed).
func (s *Store) Identity() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	v, ok, err := copyGet(s.get(identityKey))
	if err != nil || !ok {
		return nil, err
	}
	return v, nil
}

// SetIdentity binds the store to id, in one synced write: the runtime
// stores the id of the changelog topic the store is restored from, so
// that a store of another topic of the same name (recreated, or another
// cluster's) is never taken for this one. Wipe removes it. It must not be
// called while a restore is buffered.
func (s *Store) SetIdentity(id []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	if s.restoring {
		return ErrRestoreInProgress
	}
	b := s.db.NewBatch()
	if err := b.Set(identityKey, id, nil); err != nil {
		return fmt.Errorf("state: set identity: %w", s.h.fail(err))
	}
	if err := s.apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("state: set identity: %w", err)
	}
	return b.Close()
}
