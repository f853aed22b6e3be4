"""The console's shared base: the signed-in view mixins, the page context and the URL map of /console/."""
