;; Declares 40000 pages (2.4 GiB) of initial memory: refused under the default 64 MiB.
(module (memory 40000) (func (export "_start")))
