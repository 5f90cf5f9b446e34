package router

import (
	_ "embed"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPI is the API's contract, an OpenAPI 3.0 document kept by hand in
// router/openapi.json: every route, parameter, body, answer and problem
// type. It is a string, so nothing can change it. The router's tests
// validate every request they send and every answer they get against it,
// so a route or answer that is not described fails them.
//
//go:embed openapi.json
var openAPI string

// serveOpenAPI is GET /v1/openapi.json: the contract, which needs no token.
func serveOpenAPI(c *gin.Context) error {
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(http.StatusOK)
	_, err := io.WriteString(c.Writer, openAPI)
	return err
}
