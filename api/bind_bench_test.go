package api

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// BenchmarkBindSearch measures reading a search body with an embedding of
// 384 and of 1,536 numbers (see embeddingIn).
func BenchmarkBindSearch(b *testing.B) {
	for _, dim := range []int{384, 1536} {
		nums := make([]string, dim)
		for i := range nums {
			nums[i] = fmt.Sprintf("%.4f", float64(i%17)/7-1)
		}
		body := []byte(`{"embedding":[` + strings.Join(nums, ",") + `],"limit":20}`)
		b.Run(fmt.Sprint(dim), func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				c, _ := gin.CreateTestContext(w)
				c.Request = httptest.NewRequest("POST", "/", bytes.NewReader(body))
				c.Request.Header.Set("Content-Type", "application/json")
				var req searchRequest
				if err := BindJSON(c, &req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
