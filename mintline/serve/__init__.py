"""`mintline serve`: watermark and release verdicts for people who do not hold the keys.

The key holder runs the service; anyone can paste a text or drop a bundle on the page at `/`,
or call the JSON API (`/api/v1/detect`, `/api/v1/verify`, `/api/v1/keys`, `/healthz`; OpenAPI
docs at `/docs`, served from local files). The modules:

* `published`: what the service loads (watermark keys + tokenizer, release public keys) and
  the checks it runs with them, through the watermark and release packages' own code;
* `answers`: how a detection or verification result becomes a public answer (coarse by default);
* `security`: per-client rate limit and query budget, request size and upload time limits;
* `page`: the server-rendered page with its inline script and style;
* `app`: the FastAPI application that ties them together.
"""
