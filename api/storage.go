package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/store"
)

// DataStore keeps the per-webtask storage documents (*store.Store).
type DataStore interface {
	GetData(ctx context.Context, container, name string) (store.Data, error)
	PutData(ctx context.Context, container, name, doc string, o store.PutDataOptions) (store.Data, error)
}

// dataJSON is the body of GET/PUT /api/webtask/{c}/{n}/data: the document
// as a JSON string and its etag (a write counter; null: never written).
type dataJSON struct {
	Data string `json:"data"`
	Etag *int64 `json:"etag"`
}

func toDataJSON(d store.Data) dataJSON {
	out := dataJSON{Data: d.Doc}
	if out.Data == "" {
		out.Data = "{}" // nothing stored: an empty object (reference §1.1)
	}
	if d.Etag != 0 {
		e := d.Etag
		out.Etag = &e
	}
	return out
}

// dataParams authenticates the caller of a /data route: tokens of the
// container, and a webtask-bound token for its own webtask only.
func (s *Server) dataParams(c echo.Context) (string, string, error) {
	claims, container, err := s.anyContainerParam(c)
	if err != nil {
		return "", "", err
	}
	name, err := pathName(c, "name", "webtask")
	if err != nil {
		return "", "", err
	}
	if bound(claims) && !boundTo(claims, container, name) {
		return "", "", errBound
	}
	return container, name, nil
}

// getData is GET /api/webtask/{c}/{n}/data.
func (s *Server) getData(c echo.Context) error {
	container, name, err := s.dataParams(c)
	if err != nil {
		return err
	}
	d, err := s.data.GetData(c.Request().Context(), container, name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toDataJSON(d))
}

// putDataBody is the PUT body; Etag stays raw to tell absent (force) from
// null (expect nothing stored) from a number or numeric string.
type putDataBody struct {
	Data *string         `json:"data"`
	Etag json.RawMessage `json:"etag"`
}

// putData is PUT /api/webtask/{c}/{n}/data {data, etag?}: 200 with the new
// state; 409 when etag is not the stored one; 413 past 500 KB.
func (s *Server) putData(c echo.Context) error {
	container, name, err := s.dataParams(c)
	if err != nil {
		return err
	}
	var body putDataBody
	if err := s.bindJSON(c, &body); err != nil {
		return err
	}
	if body.Data == nil {
		return errdefs.Errorf(errdefs.ErrInvalid, "the `data` field (the document as a JSON string) is required")
	}
	opts, err := parseEtag(body.Etag)
	if err != nil {
		return err
	}
	d, err := s.data.PutData(c.Request().Context(), container, name, *body.Data, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toDataJSON(d))
}

// parseEtag reads the PUT etag: absent forces, null expects nothing
// stored, else a non-negative integer (JSON number or decimal string).
func parseEtag(raw json.RawMessage) (store.PutDataOptions, error) {
	if len(raw) == 0 {
		return store.PutDataOptions{Force: true}, nil
	}
	v := strings.TrimSpace(string(raw))
	if v == "null" {
		return store.PutDataOptions{}, nil
	}
	if strings.HasPrefix(v, `"`) {
		if err := json.Unmarshal(raw, &v); err != nil {
			return store.PutDataOptions{}, errdefs.Errorf(errdefs.ErrInvalid, "etag must be an integer")
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return store.PutDataOptions{}, errdefs.Errorf(errdefs.ErrInvalid, "etag must be an integer")
	}
	return store.PutDataOptions{ExpectEtag: n}, nil
}

var errUnnamedStorage = errdefs.New(errdefs.ErrInvalid, "storage is only available to named webtasks")

// Storage serves the runtime's ctx.storage calls (agent.StorageHandler):
// the same documents as the /data routes, errors as the codes of the HTTP
// API (storageResult in errors.go).
func (s *Server) Storage(ctx context.Context, op agent.StorageOp) agent.StorageResult {
	if op.Refused != nil {
		return s.storageResult(op, op.Refused)
	}
	if op.Name == "" {
		return s.storageResult(op, errUnnamedStorage)
	}
	if !op.Set {
		d, err := s.data.GetData(ctx, op.Container, op.Name)
		if err != nil {
			return s.storageResult(op, err)
		}
		return agent.StorageResult{Doc: d.Doc, Etag: d.Etag}
	}
	d, err := s.data.PutData(ctx, op.Container, op.Name, op.Doc, store.PutDataOptions{Force: op.Force, ExpectEtag: op.Etag})
	if err != nil {
		var ce *store.DataConflictError
		if errors.As(err, &ce) {
			r := s.storageResult(op, err)
			r.Doc, r.Etag = ce.Current.Doc, ce.Current.Etag
			return r
		}
		return s.storageResult(op, err)
	}
	return agent.StorageResult{Etag: d.Etag}
}
