// Package backup owns the format of a Capstan backup and its encryption.
//
// A backup is a tar stream, encrypted with age (a passphrase or X25519
// recipients), that holds, in this order:
//
//	manifest.json   format, time, store kind and revision, CA hash
//	capstan.db      a consistent copy of the store (a bbolt file; on
//	                etcd, the member's snapshot, which Restore writes as
//	                etcd-snapshot.db so no bbolt server opens it; that
//	                file is etcdutl's input, not state, so a backup of
//	                the restored directory leaves it out)
//	pki/...         the cluster CA and every key and certificate
//	secrets/...     the key ring that decrypts the secrets
//	*.json, *.yaml, *.token, ...   the data directory's other top-level
//	                files: tokens, rejoin grants, admin.yaml, registry
//	                credentials, node tokens
//
// The git cache and the registry's images are not in it: git sync fetches
// again, and images are pushed again (or kept by copying DATA_DIR/registry).
// Nor are the logs (IsLog: capstan.log and its rotated files): they are not
// state. Restore writes whatever a backup's manifest lists, so a backup
// made before logs were left out restores, its logs with it.
//
// Write makes the tar stream on the server; Restore unpacks one into a new
// data directory, refusing any name outside it. Seal and Open wrap a
// stream in age encryption, on the client that asked for the backup, so the
// server never sees the passphrase or identity.
//
// Concurrency: the functions hold no state; Write reads the data
// directory's files while the server runs (each is replaced atomically, so
// a read sees a whole version).
package backup
