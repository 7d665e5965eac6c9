package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox/logstream"
)

// Cluster is a member's view of the other members of its cluster
// (daemon/cluster). The API reaches it only through this interface.
type Cluster interface {
	// Members lists the live members.
	Members(ctx context.Context) ([]types.Member, error)
	// FollowPeers streams container's webtask output from every other
	// live member into push (encoded records, each peer's in its order),
	// starting with the records b selects of each peer's backlog, until
	// ctx ends; with follow false each peer sends its backlog only. The
	// channel closes when every peer stream has ended. push never blocks.
	FollowPeers(ctx context.Context, container string, b logstream.Backlog, follow bool, push func(enc []byte)) <-chan struct{}
	// PeerAuthorized reports whether r carries the members' peer
	// credential.
	PeerAuthorized(r *http.Request) bool
}

var (
	errNotClustered = errdefs.New(errdefs.ErrNotFound, "this daemon is not a cluster member")
	errNotPeer      = errdefs.New(errdefs.ErrUnauthenticated, "peer credential required")
)

// peerBacklogWait bounds how long a stream with follow=0 waits for the
// other members' backlogs.
const peerBacklogWait = 2 * time.Second

// listMembers is GET /api/admin/cluster/members (master only): the live members
// (wtctl fans its admin views out over them).
func (s *Server) listMembers(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	if s.cluster == nil {
		return errNotClustered
	}
	m, err := s.cluster.Members(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

// peerLogs is GET /api/cluster/logs/{container}?max=N&since=UNIXNANO&follow=0
// for the other members only (peer credential): this member's own output of
// container, as Server-Sent Events like /api/logs/tenant, never merged
// further. The member serving a reader merges it into the reader's stream.
func (s *Server) peerLogs(c echo.Context) error {
	if s.cluster == nil {
		return errNotClustered
	}
	if !s.cluster.PeerAuthorized(c.Request()) {
		return errNotPeer
	}
	container, err := pathName(c, "container", "container")
	if err != nil {
		return err
	}
	var b logstream.Backlog
	if v := c.QueryParam("max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errdefs.Errorf(errdefs.ErrInvalid, "max must be a non-negative integer")
		}
		b.Max = min(n, maxLogTail)
	}
	if v := c.QueryParam("since"); v != "" {
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errdefs.Errorf(errdefs.ErrInvalid, "since must be a time in Unix nanoseconds")
		}
		b.Since = time.Unix(0, ns)
	}
	sub, err := s.logs.Subscribe(container, b)
	if err != nil {
		return err
	}
	defer sub.Close()
	s.serveLogEvents(c, sub, c.QueryParam("follow") != "0", nil)
	return nil
}
