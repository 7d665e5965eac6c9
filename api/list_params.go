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

// metaFilters parses the ?meta=key:value filters of the list routes (nil
// when there are none). none is true when two filters name one key with
// different values: they can never both match, so the list is empty.
func metaFilters(c echo.Context) (meta map[string]string, none bool, err error) {
	for _, f := range c.QueryParams()["meta"] {
		k, v, ok := strings.Cut(f, ":")
		if !ok || k == "" {
			return nil, false, errdefs.Errorf(errdefs.ErrInvalid, "meta filters must have the form key:value")
		}
		if meta == nil {
			meta = map[string]string{}
		}
		if old, dup := meta[k]; dup && old != v {
			return nil, true, nil
		}
		meta[k] = v
	}
	return meta, false, nil
}
