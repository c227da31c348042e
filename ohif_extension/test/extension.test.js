// The extension registers in the real @ohif/core ExtensionManager and mounts its panel.
import { beforeEach, describe, expect, test } from 'vitest';
import ohifCore from '@ohif/core/dist/ohif-core.umd.js';
import extension from '../src/index.js';

const { CommandsManager, ServicesManager, ExtensionManager } = ohifCore;

describe('the radlabel extension in OHIF core', () => {
  beforeEach(() => {
    document.body.innerHTML = '';
    sessionStorage.clear();
  });

  test('registers with OHIF core, mounts the sign-in panel and its commands', async () => {
    const commandsManager = new CommandsManager({ getAppState: () => {} });
    const servicesManager = new ServicesManager(commandsManager);
    const extensionManager = new ExtensionManager({ commandsManager, servicesManager, appConfig: {} });
    servicesManager.setExtensionManager(extensionManager);
    await extensionManager.registerExtension(extension);
    expect(extensionManager.registeredExtensionIds).toContain('radlabel');
    expect(document.querySelector('#radlabel-panel #radlabel-signin')).not.toBeNull();
    expect(commandsManager.getCommand('radlabelSubmit', 'DEFAULT')).toBeTruthy();
    // onModeEnter without a task in the URL or a token does nothing (and throws nothing)
    extensionManager.onModeEnter();
    expect(document.querySelectorAll('#radlabel-panel').length).toBe(1);
  });

  test("OHIF's DICOMweb requests carry the signed-in reader's bearer token, and none before sign-in", async () => {
    const commandsManager = new CommandsManager({ getAppState: () => {} });
    const servicesManager = new ServicesManager(commandsManager);
    servicesManager.registerService(ohifCore.UserAuthenticationService.REGISTRATION);
    const extensionManager = new ExtensionManager({ commandsManager, servicesManager, appConfig: {} });
    servicesManager.setExtensionManager(extensionManager);
    await extensionManager.registerExtension(extension);
    const auth = servicesManager.services.userAuthenticationService;
    expect(auth.getAuthorizationHeader()).toEqual({});
    sessionStorage.setItem('radlabel.readerToken', 'rdr_abc');
    expect(auth.getAuthorizationHeader()).toEqual({ Authorization: 'Bearer rdr_abc' });
    sessionStorage.clear();
    expect(auth.getAuthorizationHeader()).toEqual({});
  });

  test('the default export is what window.config.extensions import() expects', () => {
    expect(extension.id).toBe('radlabel');
    expect(typeof extension.preRegistration).toBe('function');
    expect(typeof extension.onModeEnter).toBe('function');
  });
});
