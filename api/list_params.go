package api

import (
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// pageParams parses ?offset and ?limit; limit defaults to and is capped at
// max.
func pageParams(c echo.Context, max int) (offset, limit int, err error) {
	limit = max
	if v := c.QueryParam("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, errdefs.Errorf(errdefs.ErrInvalid, "offset must be a non-negative integer")
		}
		offset = n
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, errdefs.Errorf(errdefs.ErrInvalid, "limit must be a non-negative integer")
		}
		if n > 0 && n < max {
			limit = n
		}
	}
	return offset, limit, nil
}

// listQuery is the query of the list routes:
// ?offset=&limit=&meta=key:value...
type listQuery struct {
	Offset, Limit int
	// Meta holds the meta filters (nil when there are none).
	Meta map[string]string
	// Empty is true when two filters name one key with different values:
	// they can never both match, so the list is empty.
	Empty bool
}

// parseListQuery parses a list route's query; limit defaults to and is
// capped at maxListLimit.
func parseListQuery(c echo.Context) (listQuery, error) {
	var q listQuery
	var err error
	if q.Offset, q.Limit, err = pageParams(c, maxListLimit); err != nil {
		return listQuery{}, err
	}
	for _, f := range c.QueryParams()["meta"] {
		k, v, ok := strings.Cut(f, ":")
		if !ok || k == "" {
			return listQuery{}, errdefs.Errorf(errdefs.ErrInvalid, "meta filters must have the form key:value")
		}
		if q.Meta == nil {
			q.Meta = map[string]string{}
		}
		if old, dup := q.Meta[k]; dup && old != v {
			return listQuery{Empty: true}, nil
		}
		q.Meta[k] = v
	}
	return q, nil
}
