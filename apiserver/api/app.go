package api

import (
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
}

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
	// Health is Healthy, Progressing, Degraded or Unknown.
	Health        string      `json:"health,omitempty"`
	HealthMessage string      `json:"healthMessage,omitempty"`
	Conditions    []Condition `json:"conditions,omitempty"`
}
