package wire

// Store administration (admins only).
const (
	// StoreMigratePath answers a POST of a MigrateRequest with a
	// MigrateResponse once the copy is done.
	StoreMigratePath = "/store/migrate"
	// StoreReadOnlyPath answers GET with the store's ReadOnlyState and
	// takes a PUT of one to set it.
	StoreReadOnlyPath = "/store/read-only"
)

// MigrateRequest asks the server to copy its store into a new store of
// the other backend: To is "etcd" (with Etcd) or "bbolt" (BboltPath, on
// the server's machine; default DATA_DIR/capstan.db).
type MigrateRequest struct {
	To        string      `json:"to"`
	Etcd      *EtcdTarget `json:"etcd,omitempty"`
	BboltPath string      `json:"bboltPath,omitempty"`
}

// EtcdTarget is where an etcd store is: the members' client URLs and the
// TLS files on the server's machine, as capstan server's --etcd-* flags.
type EtcdTarget struct {
	Endpoints []string `json:"endpoints"`
	CAFile    string   `json:"caFile,omitempty"`
	CertFile  string   `json:"certFile,omitempty"`
	KeyFile   string   `json:"keyFile,omitempty"`
	Prefix    string   `json:"prefix,omitempty"`
}

// MigrateResponse says what a migration copied and what to do next.
type MigrateResponse struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Revision is the old store's revision the copy holds; Head the new
	// store's first.
	Revision    int64 `json:"revision"`
	Head        int64 `json:"head"`
	Objects     int   `json:"objects"`
	Allocations int   `json:"allocations"`
	// Restart is the flags the servers start with on the new store.
	Restart string `json:"restart"`
}

// ReadOnlyState is whether the store refuses writes, and why. A GET
// also says, for several servers on one etcd store (Election), which of
// them leads: Leader is its --leader-id, "" while none does.
type ReadOnlyState struct {
	ReadOnly bool   `json:"readOnly"`
	Reason   string `json:"reason,omitempty"`
	Election bool   `json:"election,omitempty"`
	Leader   string `json:"leader,omitempty"`
}
