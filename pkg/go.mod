module github.com/orderflow/orderflow/pkg

go 1.26
