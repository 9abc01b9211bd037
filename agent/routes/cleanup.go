package routes

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// Cleanup removes what a Manager with opts installed: every route of its
// protocol in its table and the egress table with the masquerade rule.
// It needs no client and is idempotent (for `capstan down`).
func Cleanup(opts Options) error {
	opts.setDefaults()
	m := &Manager{opts: opts, log: opts.Logger}
	h, err := m.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	var errs []error
	have, err := m.owned(h)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range have {
		if err := h.RouteDel(m.toNetlink(r)); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("routes: delete %s via %s: %w", r.Dst, r.Gateway, err))
		}
	}
	var copts []nftables.ConnOption
	if opts.NetNS != "" {
		ns, err := netns.GetFromPath(opts.NetNS)
		if err != nil {
			return fmt.Errorf("routes: open network namespace %s: %w (check the path)", opts.NetNS, err)
		}
		defer ns.Close()
		copts = append(copts, nftables.WithNetNSFd(int(ns)))
	}
	c, err := nftables.New(copts...)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("routes: nftables: %w", err))...)
	}
	// Add then delete: no error when the table is already gone.
	t := &nftables.Table{Name: opts.EgressTable, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("routes: delete nftables table ip %s: %w (try 'nft delete table ip %s')", opts.EgressTable, err, opts.EgressTable))
	}
	return errors.Join(errs...)
}
