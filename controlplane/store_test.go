package controlplane

import (
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/store"
)

func TestStoreOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    StoreOptions
		wantErr string
	}{
		{"default is bbolt", StoreOptions{}, ""},
		{"bbolt", StoreOptions{Backend: StoreBolt}, ""},
		{"etcd with endpoints", StoreOptions{Backend: StoreEtcd, Etcd: store.EtcdOptions{Endpoints: []string{"https://10.0.0.1:2379"}}}, ""},
		{"etcd without endpoints", StoreOptions{Backend: StoreEtcd}, "--etcd-endpoints"},
		{"endpoints without etcd", StoreOptions{Etcd: store.EtcdOptions{Endpoints: []string{"https://10.0.0.1:2379"}}}, "--store etcd"},
		{"unknown backend", StoreOptions{Backend: "sqlite"}, `store "sqlite"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("validate: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("validate: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
