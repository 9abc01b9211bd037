package apiserver

import (
	"testing"
	"time"
)

func TestWatchLifetime(t *testing.T) {
	tests := []struct {
		name string
		max  time.Duration
		r    float64
		want time.Duration
	}{
		{"no spread", 30 * time.Minute, 0, 30 * time.Minute},
		{"middle", 30 * time.Minute, 0.5, 30*time.Minute - 225*time.Second},
		{"almost the most spread", 40 * time.Minute, 0.999999, 30*time.Minute + 600*time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := watchLifetime(tt.max, tt.r); got != tt.want {
				t.Fatalf("watchLifetime(%v, %v) = %v, want %v", tt.max, tt.r, got, tt.want)
			}
		})
	}
}
