package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// App is one application from a git repository: its workloads and services.
// Git sync writes it; the app controller turns it into Workload and Service
// objects.
type App struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     AppSpec    `json:"spec"`
	Status   AppStatus  `json:"status,omitzero"`
}

// AppSpec is the desired state of an app, as its descriptor says.
type AppSpec struct {
	Workloads []AppWorkload `json:"workloads,omitempty"`
	Services  []AppService  `json:"services,omitempty"`
	// Secrets are the app's decrypted secrets, sealed (secret.go).
	Secrets []AppSecret `json:"secrets,omitempty"`
	// Rollback is RollbackAuto when the server reverts a commit whose
	// rollout fails; empty leaves it to people.
	Rollback string `json:"rollback,omitempty"`
	// Preview, when set, lets pull requests deploy previews of the app.
	Preview *AppPreview `json:"preview,omitempty"`
	// DependsOn names apps of the same repository this one waits for:
	// its pod groups are made or updated only once those apps' pod
	// groups are Available at the same commit.
	DependsOn []string `json:"dependsOn,omitempty"`
	// DependsOnSpecs holds, for each dependency declared in the same
	// commit, the DependencySpecHash of its spec in that commit: the
	// dependency is waited for at that revision, not at an older one.
	DependsOnSpecs map[string]string `json:"dependsOnSpecs,omitempty"`
}

// AppPreview is how an app's previews run: TTL a duration ("72h"),
// Replicas of every pod group.
type AppPreview struct {
	Enabled  bool   `json:"enabled"`
	TTL      string `json:"ttl"`
	Replicas int32  `json:"replicas"`
}

// RollbackAuto asks for automatic revert of a failed rollout.
const RollbackAuto = "auto"

// AppWorkload is one pod group of an app.
type AppWorkload struct {
	Name string       `json:"name"`
	Spec WorkloadSpec `json:"spec"`
}

// AppService is one service of an app.
type AppService struct {
	Name string      `json:"name"`
	Spec ServiceSpec `json:"spec"`
}

// App health values.
const (
	HealthHealthy     = "Healthy"
	HealthProgressing = "Progressing"
	HealthDegraded    = "Degraded"
	HealthUnknown     = "Unknown"
	// HealthMissing: nothing of the app runs, because no commit of it
	// ever applied (its first commit was rejected), as Argo CD shows an
	// app whose resources do not exist.
	HealthMissing = "Missing"
)

// Sync results.
const (
	SyncApplied  = "Applied"
	SyncRejected = "Rejected"
	SyncFailed   = "Failed"
	// SyncDeleted records an app pruned because its commit no longer
	// declares it.
	SyncDeleted = "Deleted"
	// SyncHeld records a commit held, not applied, until an admin
	// confirms it (a mass deletion).
	SyncHeld = "Held"
)

// AppStatus is the observed state of an app.
type AppStatus struct {
	// SyncedCommit is the commit the spec came from.
	SyncedCommit string `json:"syncedCommit,omitempty"`
	// AttemptedCommit is the commit the last sync attempt looked at; it
	// differs from SyncedCommit while a newer commit is rejected.
	AttemptedCommit string `json:"attemptedCommit,omitempty"`
	// LastSyncResult is Applied, Rejected, Failed or Held.
	LastSyncResult  string    `json:"lastSyncResult,omitempty"`
	LastSyncTime    time.Time `json:"lastSyncTime,omitzero"`
	LastSyncMessage string    `json:"lastSyncMessage,omitempty"`
	// Health is Healthy, Progressing, Degraded, Missing or Unknown.
	Health        string      `json:"health,omitempty"`
	HealthMessage string      `json:"healthMessage,omitempty"`
	Conditions    []Condition `json:"conditions,omitempty"`
	// Waits lists what the app or its pod groups wait for before the app
	// controller makes or updates them (dependsOn).
	Waits []DependencyWait `json:"waits,omitempty"`
}

// NeverApplied reports whether no commit of the app ever applied: git
// sync made the App only to show that its first commit was rejected
// (AttemptedCommit, LastSyncMessage), and it runs nothing.
func (s *AppStatus) NeverApplied() bool { return s.SyncedCommit == "" && s.AttemptedCommit != "" }

// NeverAppliedMessage is the health message of an app that NeverApplied
// (health Missing).
const NeverAppliedMessage = "nothing deployed: no commit of this app has applied yet"

// DependencyWait is one dependency not yet Available.
type DependencyWait struct {
	// Group is the waiting pod group; empty: the whole app waits.
	Group string `json:"group,omitempty"`
	// On is the app (for the whole app) or pod group waited for.
	On string `json:"on"`
	// Message: "waiting for db: 1/2 ready".
	Message string `json:"message"`
}

// DependencySpecHash identifies the revision of an app a dependent waits
// for: a hash of its pod groups and services (not of its own
// dependencies, so a chain of dependents does not change with each link).
func DependencySpecHash(s *AppSpec) string {
	b, err := json.Marshal(struct {
		W []AppWorkload
		S []AppService
	}{s.Workloads, s.Services})
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
