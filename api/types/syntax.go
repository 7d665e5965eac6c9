package types

// SyntaxRequest is the body of POST /api/syntax/{container}: code and the
// meta that selects its language (wt-language, wt-compiler), as a
// webtask's create would carry them.
type SyntaxRequest struct {
	Code string            `json:"code"`
	Meta map[string]string `json:"meta,omitempty"`
}

// SyntaxError is one syntax error: line and column are 1-based, the
// column in UTF-16 code units (as browsers count).
type SyntaxError struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// SyntaxResult answers POST /api/syntax/{container}. Language is what the
// code was checked as ("javascript" or "typescript"), or "" when it is
// the input of a custom compiler and was not checked. Errors is empty for
// valid code.
type SyntaxResult struct {
	Language string        `json:"language"`
	Errors   []SyntaxError `json:"errors"`
}
