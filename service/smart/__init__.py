"""The full assessment view: a SMART on FHIR app served by the service (issue 14).

``views`` holds the routes (:func:`full_view_routes`), ``oauth`` the SMART App Launch
steps, ``sessions`` the server-side sessions, ``record`` the data and the hook's own
evaluation, ``view``/``board`` what the page says, ``liver_map``/``trends`` its pictures.
"""

from service.smart.views import full_view_routes

__all__ = ["full_view_routes"]
