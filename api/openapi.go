package api

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDoc is the hand-written OpenAPI 3 description of the API; a test
// keeps it and the registered routes in step.
//
//go:embed openapi.json
var openAPIDoc []byte

// GET /api/openapi.json
func (s *Server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json; charset=utf-8", openAPIDoc)
}
