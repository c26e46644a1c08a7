// Package state holds invroute's local state stores: one Pebble database per
// partition of each store, written transactionally so that, with Kafka
// transactions, processing is exactly-once and a crash never forces a wipe.
//
// # Lifecycle
//
// Kafka is the source of truth; the local store is a cache of the store's
// changelog topic, and its checkpoint says how much of the changelog it holds.
//
//	Open(dir) ── reads Checkpoint ──► Restore(k, v, off)... ──► FinishRestore
//	                                  (changelog from Checkpoint().ChangelogOffset
//	                                   to its end, read_committed)
//
//	then, for every Kafka transaction:
//
//	  Txn().Get/Set/Delete/Iterate,     reads see the transaction's own writes
//	  Table.Get/Put/Delete              (typed, staged in a map)
//	          │
//	  Prepare()                         tables encode staged values into the Txn
//	          │
//	  Txn().Writes(fn)                  each written key once, final value
//	          │                         (nil = delete): produce to the changelog
//	  Kafka commit (outputs, changelog, input offsets in one transaction)
//	          │
//	     ┌────┴──────────────┐
//	  committed           aborted / failed
//	  Commit(cp)          Abort()
//	  batch + cp applied  batch and staged values dropped; the consumer
//	  atomically; tables  rewinds to the committed input offsets
//	  cache the values
//
// CommitDeferred(cp) is Commit without the write: the transaction is the
// store's committed state at once (reads see it), and ApplyPending, the next
// commit, a restore, an iteration or Close writes it to Pebble later, with
// cp, in one atomic batch. The engine uses it to write the stores while the
// next transaction's output is flushed.
//
// Commit is called only after Kafka has committed, so the store never holds
// what Kafka does not; a crash between the Kafka commit and Commit, or before
// a deferred write (or, with Options.Sync false, a crash that loses recently
// applied batches) leaves the store at an older checkpoint, and the next Open
// replays the changelog from there. When the outcome of a Kafka commit is unknown, the caller Aborts and
// restores from what Kafka says was committed. If the changelog was deleted
// or recreated, Wipe empties the store and restore starts from offset 0.
//
// # Stores, transactions and tables
//
// A Store has one open Txn, an indexed Pebble batch plus the set of keys it
// wrote. A Table is a typed view of the keys under a prefix: it stages typed
// values until Prepare, and keeps a bounded cache (CLOCK eviction) of decoded committed values
// that Commit, Abort, FinishRestore and Wipe keep coherent, so a hot
// read-modify-write key costs neither a Pebble read nor a decode.
//
// A Store and its Tables are used by one goroutine at a time; see Store for
// the on-disk format.
package state
