package types

// ErrorBody is the JSON shape of every API error (reference §1.0).
type ErrorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	ReqID   string `json:"req_id"`
}
