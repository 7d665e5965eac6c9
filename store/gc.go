package store

import (
	"context"
	"fmt"
	"time"
)

// CollectCodeBlobs removes the code blobs created before cutoff that no
// stored webtask names (code_url webtask:///code/{hash}) and returns how
// many it removed. Unnamed code tokens are not stored, so the daemon cannot
// know which of them still circulate: a blob is kept for as long as the
// retention the caller chose (cutoff = now - retention), and a token whose
// blob was collected answers 404 until its code is issued again.
func (s *Store) CollectCodeBlobs(ctx context.Context, cutoff time.Time) (removed int, err error) {
	defer s.writeDone(&err)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	rows, err := s.db.QueryContext(ctx, `DELETE FROM code_blobs
		WHERE created_at < ?
		  AND NOT EXISTS (SELECT 1 FROM webtasks w WHERE w.code_url = 'webtask:///code/' || code_blobs.hash)
		RETURNING hash`, cutoff.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("store: collect code blobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var hash string
		if err := rows.Scan(&hash); err != nil {
			return removed, fmt.Errorf("store: collect code blobs: %w", err)
		}
		s.codes.drop(hash)
		removed++
	}
	if err := rows.Err(); err != nil {
		return removed, fmt.Errorf("store: collect code blobs: %w", err)
	}
	return removed, nil
}

// MetaValues returns, once each, the values stored webtasks give the meta
// key (webtasks without it are left out): module collection reads the
// wt-node-dependencies every webtask declares.
func (s *Store) MetaValues(ctx context.Context, key string) ([]string, error) {
	out, err := queryAll(ctx, s.db, func(sc scanner) (string, error) {
		var v string
		err := sc.Scan(&v)
		return v, err
	}, `SELECT DISTINCT v FROM (SELECT `+s.db.d.metaValue()+` AS v FROM webtasks) AS x WHERE v IS NOT NULL`, key)
	if err != nil {
		return nil, fmt.Errorf("store: meta values: %w", err)
	}
	return out, nil
}
