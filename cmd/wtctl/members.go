package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/webtaskd/webtaskd/api/types"
)

// target is one daemon an admin view asks: a cluster member (node set) or
// the single daemon of --url (node "").
type target struct {
	node string
	c    *client
}

// targets returns the daemons an admin view fans out over: every live
// member when --url is a cluster member (GET /api/admin/cluster/members, each
// asked at its advertised URL with the same master token), else the
// daemon of --url alone.
func (o *connOptions) targets(ctx context.Context) ([]target, error) {
	c, err := o.client()
	if err != nil {
		return nil, err
	}
	var members []types.Member
	err = c.do(ctx, "GET", "/api/admin/cluster/members", nil, &members)
	var ae *apiError
	if errors.As(err, &ae) && ae.Code == http.StatusNotFound {
		return []target{{c: c}}, nil // not a cluster member (or an older daemon)
	}
	if err != nil {
		return nil, err
	}
	out := make([]target, 0, len(members))
	for _, m := range members {
		mc := *c
		mc.base = m.URL
		out = append(out, target{node: m.NodeID, c: &mc})
	}
	return out, nil
}

// fanOut calls fn for every target at once and returns their answers in
// the targets' order; a member that fails is reported on stderr and left
// out (the error returned names how many failed).
func fanOut[T any](ctx context.Context, stderr io.Writer, ts []target, fn func(context.Context, *client) (T, error)) ([]T, []target, error) {
	res := make([]T, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = fn(ctx, t.c)
		}()
	}
	wg.Wait()
	var ok []T
	var okT []target
	failed := 0
	for i, err := range errs {
		if err != nil {
			if len(ts) == 1 {
				return nil, nil, err
			}
			failed++
			fmt.Fprintf(stderr, "wtctl: member %s (%s): %v\n", ts[i].node, ts[i].c.base, err)
			continue
		}
		ok, okT = append(ok, res[i]), append(okT, ts[i])
	}
	if failed > 0 {
		return ok, okT, fmt.Errorf("%d of %d members did not answer", failed, len(ts))
	}
	return ok, okT, nil
}
