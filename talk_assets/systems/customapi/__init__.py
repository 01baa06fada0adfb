"""The shared engine of the "your own system" APIs (Custom CRM, Custom Webshop).

There is no public spec for a company's in-house API, so this project defines one design and
serves it from declarations: `spec.SystemSpec` (entities, models, paths, auth), a generic sandbox
(`sandbox.CustomApiApp`), a generic client (`client.CustomApiClient`) and an OpenAPI 3.1 document
generated from the pydantic models (`openapi.build_openapi`).
"""
