// tfjs's gradient functions for the suites (they differentiate policies). In Node, `useBackend` of
// @piflow/core/testing imports the @tensorflow/tfjs package itself (registerGradients); a browser page cannot
// import a package by a computed name, so the page imports it here, as a browser app that trains does.
import '@tensorflow/tfjs';
