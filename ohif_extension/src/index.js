// radlabel's OHIF v3 extension, loaded at runtime by the prebuilt OHIF 3.13.2 viewer
// (window.config.extensions = ['/radlabel/extension/index.js']): the default export is the
// extension object. No build step, no shared React: the panel is plain DOM (panel.js).
import { tokenStore } from './api.js';
import { Controller } from './controller.js';
import * as glue from './viewer.js';

let controller = null;

// Every DICOMweb request OHIF makes (QIDO, WADO metadata, frames, bulk data) carries the reader's token:
// the front's gateway answers nothing without it. Read at each request, so signing in or out takes effect at once.
export function authorizeDicomWeb(servicesManager, tokens = tokenStore()) {
  const auth = servicesManager?.services?.userAuthenticationService;
  auth?.setServiceImplementation?.({
    getAuthorizationHeader: () => (tokens.get() ? { Authorization: `Bearer ${tokens.get()}` } : {}),
    // The gateway refused the token mid-read (revoked or replaced): say so, as the readers' API does.
    handleUnauthenticated: () => controller?.tokenRefused('the viewer could not load images with your token: it is invalid, '
      + 'expired or revoked. Sign in again, or ask the administrator for a new token.'),
  });
}

export function getController() {
  return controller;
}

const extension = {
  id: 'radlabel',
  version: '0.1.0',

  preRegistration({ servicesManager, commandsManager, extensionManager }) {
    authorizeDicomWeb(servicesManager);
    controller = new Controller({});
    controller.viewer = { ctx: { servicesManager, commandsManager, extensionManager }, glue };
    const begin = () => controller.start();
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', begin, { once: true });
    else begin();
  },

  onModeEnter({ servicesManager, commandsManager, extensionManager }) {
    controller?.enterTask({ ctx: { servicesManager, commandsManager, extensionManager }, glue });
  },

  onModeExit() {
    controller?.leave();
  },

  getCommandsModule() {
    return {
      definitions: {
        radlabelSubmit: { commandFn: () => controller?.submit() },
        radlabelApplyPreset: { commandFn: ({ name }) => controller?.applyPreset(controller.state.ohif.windowPresets.find(p => p.name === name)) },
      },
      defaultContext: 'DEFAULT',
    };
  },
};

export default extension;
