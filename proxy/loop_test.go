package proxy

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"sigs.k8s.io/knftables"
)

func TestStartProgramsLatestUpdateAndRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := knftables.NewFake(knftables.IPv4Family, "capstan")
		nft := &failingNFT{Interface: fake, fail: true}
		p, err := New(Options{NFT: nft, RetryInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Start(ctx) }()

		services, eps := smallModel()
		p.Update(services, eps)
		synctest.Wait()
		// The first sync failed (injected): nothing programmed yet.
		fake.RLock()
		programmed := fake.Table != nil
		fake.RUnlock()
		if programmed {
			t.Fatal("table programmed although the sync failed")
		}
		time.Sleep(time.Second) // virtual time inside the bubble: the retry fires
		synctest.Wait()
		if got := fake.Dump(); got != readGolden(t, "small.nft") {
			t.Fatalf("after the retry:\n%s", got)
		}

		// Two quick updates: the table ends at the latest.
		p.Update(services[1:], eps)
		p.Update(services[:1], eps)
		synctest.Wait()
		fake.RLock()
		n := len(fake.Table.Sets[serviceIPsSet].Elements)
		fake.RUnlock()
		if n != 1 {
			t.Fatalf("service-ips has %d elements, want only web's", n)
		}

		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Start returned %v", err)
		}
	})
}
